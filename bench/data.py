"""Benchmark vectors with real structure, made locally from text that ships with Python.

No embedding model or public vector set can be fetched here (no network beyond package
registries, and nothing may download data sets or weights at run time), and uniform or
Gaussian noise flatters every ANN index: it has no clusters, no hubs and no skew. So the
vectors are **LSA document embeddings** (TF-IDF, then truncated SVD) of real English and
code prose found on this machine:

* **docstring paragraphs** (module, class and function docstrings split at blank lines) of every ``.py`` file in the Python standard
  library and in the installed site-packages (parsed with ``ast``);
* **comment blocks** (runs of ``#`` lines) of the same files;
* **paragraphs** (blank-line separated) of ``.rst``, ``.txt`` and ``.md`` files there (package
  docs, licences, READMEs, data-file notes).

Each unit of text is one document; documents shorter than 40 characters or 5 words are
dropped and exact duplicates (after whitespace folding) are removed. The result has the
structure real embeddings have: documents about the same subject (HTTP, dates, numerics,
Kubernetes models, licences, test helpers, ...) share vocabulary, so they cluster in the
SVD space, cluster sizes are very uneven, and near-duplicates (overloads, generated
clients) form tight groups. It is not a neural embedding, so absolute recall numbers
differ from those on, say, sentence-transformer vectors; the index-to-index and
builder-to-raw comparisons are what this data is for.

Pipeline (deterministic for a given machine's installed files): sorted file walk ->
extract -> dedupe -> shuffle (seeded) -> take ``n + queries`` documents -> TF-IDF
(sublinear tf, ``max_features=2**18``, unigrams and bigrams, ``min_df=2``) ->
``TruncatedSVD(dim, algorithm="randomized", random_state=seed)`` -> L2-normalised float32.
The first ``n`` rows are the base set; the last ``queries`` rows are held-out queries
(never added to any index). The matrix and a provenance JSON are cached under
``~/.cache/faiss-index-operator/bench/``.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
import sysconfig
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE = Path.home() / ".cache" / "faiss-index-operator" / "bench"
VERSION = 2  # bump when sampling or vectorisation changes
CORPUS_VERSION = 1  # bump when text extraction changes
MIN_CHARS = 40
MIN_WORDS = 5
MAX_CHARS = 4000
TEXT_SUFFIXES = {".rst", ".txt", ".md"}
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Dataset:
    base: np.ndarray  # (n, dim) float32, L2-normalised
    queries: np.ndarray  # (q, dim) float32, held out
    provenance: dict


def text_roots() -> list[Path]:
    """Standard library and every site-packages directory of this interpreter (deduplicated)."""
    paths = sysconfig.get_paths()
    roots = {Path(paths["stdlib"]), Path(paths["purelib"]), Path(paths["platlib"])}
    roots |= {Path(p) for p in sys.path if p.endswith("site-packages")}
    return sorted(r.resolve() for r in roots if r.is_dir())


def _python_units(text: str) -> tuple[list[str], list[str]]:
    docstrings: list[str] = []
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        tree = None
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    docstrings.extend(_paragraphs(doc))
    comments: list[str] = []
    block: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not stripped.startswith("#!"):
            block.append(stripped.lstrip("#").strip())
        elif block:
            comments.append(" ".join(block))
            block = []
    if block:
        comments.append(" ".join(block))
    return docstrings, comments


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def _file_units(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """(suffix, [(kind, folded text)]) of one file; empty when unreadable or huge."""
    try:
        if not path.is_file() or path.stat().st_size > 5_000_000:
            return path.suffix, []
        text = path.read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return path.suffix, []
    if path.suffix == ".py":
        docstrings, comments = _python_units(text)
        units = [("docstring", d) for d in docstrings] + [("comment", c) for c in comments]
    else:
        units = [(f"paragraph{path.suffix}", p) for p in _paragraphs(text)]
    out = []
    for kind, unit in units:
        folded = _SPACE.sub(" ", unit).strip()[:MAX_CHARS]
        if len(folded) >= MIN_CHARS and len(folded.split()) >= MIN_WORDS:
            out.append((kind, folded))
    return path.suffix, out


def collect_documents(roots: list[Path], progress=print) -> tuple[list[str], dict]:
    """Every distinct text unit under ``roots``, in a deterministic order, with counts by kind.

    Files are parsed in a process pool (``ast.parse`` dominates); results come back in
    file order, so deduplication keeps the same first occurrence on every run.
    """
    from concurrent.futures import ProcessPoolExecutor

    seen: set[bytes] = set()
    docs: list[str] = []
    kinds: Counter[str] = Counter()
    files: Counter[str] = Counter()
    per_root: Counter[str] = Counter()
    t0 = time.perf_counter()
    with ProcessPoolExecutor() as pool:
        for root in roots:
            paths = sorted(p for p in root.rglob("*") if p.suffix in TEXT_SUFFIXES | {".py"})
            for i, (suffix, units) in enumerate(pool.map(_file_units, paths, chunksize=64)):
                if i % 5000 == 0:
                    progress(f"[data] {root}: {i}/{len(paths)} files, {len(docs)} documents, {time.perf_counter() - t0:.0f}s")
                files[suffix] += 1
                for kind, folded in units:
                    digest = hashlib.blake2b(folded.lower().encode(), digest_size=16).digest()
                    if digest in seen:
                        continue
                    seen.add(digest)
                    docs.append(folded)
                    kinds[kind] += 1
                    per_root[str(root)] += 1
    stats = {"documents": len(docs), "by_kind": dict(kinds), "files_by_suffix": dict(files),
             "documents_by_root": dict(per_root), "collect_seconds": round(time.perf_counter() - t0, 1)}
    return docs, stats


def cached_documents(roots: list[Path], progress=print) -> tuple[list[str], dict]:
    """``collect_documents`` once per machine: the corpus is cached as gzipped lines + JSON stats."""
    import gzip

    lines, meta = CACHE / f"corpus-v{CORPUS_VERSION}.txt.gz", CACHE / f"corpus-v{CORPUS_VERSION}.json"
    if lines.exists() and meta.exists():
        with gzip.open(lines, "rt", encoding="utf-8") as fh:
            docs = fh.read().split("\n")
        progress(f"[data] cached corpus {lines} ({len(docs)} documents)")
        return docs, json.loads(meta.read_text())
    docs, stats = collect_documents(roots, progress)
    with gzip.open(lines, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(docs))  # folded documents hold no newlines
    meta.write_text(json.dumps(stats, indent=2) + "\n")
    return docs, stats


def embed(docs: list[str], dim: int, seed: int, progress=print) -> tuple[np.ndarray, dict]:
    """TF-IDF then randomized truncated SVD to ``dim``; rows L2-normalised, float32."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    t0 = time.perf_counter()
    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2, max_df=0.5, ngram_range=(1, 2),
                                 max_features=2**18, dtype=np.float32)
    tfidf = vectorizer.fit_transform(docs)
    t_tfidf = time.perf_counter() - t0
    progress(f"[data] tf-idf {tfidf.shape[0]}x{tfidf.shape[1]} ({tfidf.nnz} non-zeros) in {t_tfidf:.0f}s; SVD to {dim}")
    svd = TruncatedSVD(n_components=dim, algorithm="randomized", n_iter=5, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        dense = svd.fit_transform(tfidf).astype(np.float32)
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    dense /= np.maximum(norms, 1e-12)
    stats = {"tfidf_shape": list(tfidf.shape), "tfidf_nnz": int(tfidf.nnz), "tfidf_seconds": round(t_tfidf, 1),
             "svd_seconds": round(time.perf_counter() - t0 - t_tfidf, 1),
             "svd_explained_variance": round(float(svd.explained_variance_ratio_.sum()), 4),
             "zero_rows": int((norms[:, 0] < 1e-12).sum())}
    return np.ascontiguousarray(dense), stats


def load(n: int, dim: int, queries: int = 1000, seed: int = 7, progress=print) -> Dataset:
    """The cached dataset for (n, dim, queries, seed), generating it on a miss."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = CACHE / f"lsa-v{VERSION}-{n}x{dim}-q{queries}-s{seed}"
    npy, meta = stem.with_suffix(".npy"), stem.with_suffix(".json")
    if npy.exists() and meta.exists():
        matrix = np.load(npy)
        provenance = json.loads(meta.read_text()) | {"cached": True}
        progress(f"[data] cached {npy} ({matrix.shape[0]}x{matrix.shape[1]})")
        return Dataset(matrix[:n], matrix[n:], provenance)
    t0 = time.perf_counter()
    roots = text_roots()
    docs, collected = cached_documents(roots, progress)
    need = n + queries
    if len(docs) < need:
        raise SystemExit(f"only {len(docs)} distinct documents on this machine; need {need} (lower --n)")
    # 2 % spare: a document whose words are all too rare (min_df) embeds to zero and is dropped.
    order = np.random.default_rng(seed).permutation(len(docs))[: min(len(docs), need + need // 50)]
    chosen = [docs[i] for i in order]
    progress(f"[data] {len(docs)} distinct documents in {collected['collect_seconds']}s; embedding {len(chosen)}")
    matrix, embedded = embed(chosen, dim, seed, progress)
    keep = np.flatnonzero(np.linalg.norm(matrix, axis=1) > 0.5)[:need]
    if len(keep) < need:
        raise SystemExit(f"only {len(keep)} non-empty embeddings; need {need} (lower --n)")
    matrix, chosen = np.ascontiguousarray(matrix[keep]), [chosen[i] for i in keep]
    provenance = {
        "kind": "LSA (TF-IDF + truncated SVD) embeddings of real text shipped with Python and its packages",
        "roots": [str(r) for r in roots], "python": sys.version.split()[0],
        "n": n, "queries": queries, "dim": dim, "seed": seed, "version": VERSION,
        "collect": collected, "embed": embedded, "examples": [d[:160] for d in chosen[:5]],
        "generation_seconds": round(time.perf_counter() - t0, 1),
    }
    np.save(npy, matrix)
    meta.write_text(json.dumps(provenance, indent=2) + "\n")
    progress(f"[data] generated {need}x{dim} in {provenance['generation_seconds']}s -> {npy}")
    return Dataset(matrix[:n], matrix[n:], provenance | {"cached": False})


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    ds = load(args.n, args.dim, progress=lambda m: print(m, flush=True))
    print(json.dumps(ds.provenance, indent=2))
