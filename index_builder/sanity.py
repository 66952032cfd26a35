"""Parameter sanity from the data: warnings a build records instead of hiding them in its log.

FAISS accepts parameters that cannot work well for the data it is given and says so only on
stderr ("WARNING clustering 2000 points to 1024 centroids: please provide at least 39936
training points"): an ``nlist`` far too large for the row count, PQ codebooks trained on
fewer rows than they have centroids' worth of points. A version built like that may still
pass its gates, so it is not an error, but the person who set ``nlist`` must hear of it
somewhere they look: these messages go into ``manifest.warnings``, which the operator shows
in ``status.lastBuild.warnings`` and as a ``BuildWarning`` Event.

``check`` is pure: the conditions FAISS warns about, computed from the resolved parameters
and the row counts, in words that say what to change. ``merge`` adds whatever FAISS itself
printed during training (captured by ``index_builder.faiss_stderr``) that these rules did not
already explain, deduplicated (PQ training prints the same line once per sub-quantizer).
"""

from __future__ import annotations

from index_builder import params
from index_builder.params import ResolvedParameters
from indexops_api.spec import Encoding, IndexParameters, IndexType, Refine

MIN_POINTS = params.IVF_MIN_POINTS_PER_CENTROID
MAX_WARNINGS = 20


def check(index_type: IndexType | None, resolved: ResolvedParameters, user: IndexParameters, *, kept: int,
          training_rows: int, k: int) -> list[str]:
    """Warnings about ``resolved`` for ``kept`` indexed rows of which ``training_rows`` train it."""
    out: list[str] = []
    b = resolved.build
    nlist = b.get("nlist")
    if nlist and training_rows < MIN_POINTS * nlist:
        better = max(1, training_rows // MIN_POINTS)
        out.append(f"nlist={nlist} is too large for {training_rows} training vectors: FAISS k-means wants at least "
                   f"{MIN_POINTS * nlist} ({MIN_POINTS} per list), so lists are poorly trained and unbalanced; "
                   f"use nlist <= {better} (the default for {kept} vectors is {params.default_nlist(kept)})")
    bits = b.get("mPq")
    if bits is not None and training_rows < MIN_POINTS * (1 << bits):
        out.append(f"PQ codebooks ({1 << bits} centroids per sub-quantizer, mPq={bits}) are trained on "
                   f"{training_rows} vectors, fewer than the {MIN_POINTS * (1 << bits)} FAISS asks for; "
                   f"expect lower recall, or lower parameters.mPq")
    if nlist and user.nprobe is not None and user.nprobe > nlist:
        out.append(f"nprobe={user.nprobe} is larger than nlist={nlist}; searching with nprobe={nlist}")
    factor = resolved.search.get(params.K_FACTOR)
    if factor is not None and k * factor > kept:
        out.append(f"kFactor={factor} asks for k*kFactor={k * factor} candidates from {kept} vectors; "
                   "the shortlist is the whole index")
    if index_type is not None and index_type not in params.PQ_TYPES and user.refine not in (None, Refine.NONE):
        out.append(f"parameters.refine={user.refine.value} has no effect on indexType {index_type.value}: "
                   "it stores full vectors already")
    if index_type is not None and index_type not in params.ENCODED_TYPES and user.encoding not in (None, Encoding.FLAT):
        out.append(f"parameters.encoding={user.encoding.value} has no effect on indexType {index_type.value}: "
                   "only HNSW and IVF store scalar-quantised vectors")
    return out


def merge(own: list[str], faiss_lines: list[str]) -> list[str]:
    """``own`` warnings, then distinct FAISS warning lines not already explained by them (at most 20)."""
    explained_training = any("training vectors" in w or "trained on" in w for w in own)
    out = list(own)
    for line in faiss_lines:
        text = line.strip()
        if not text or (explained_training and "please provide at least" in text):
            continue
        entry = f"FAISS: {text}"
        if entry not in out:
            out.append(entry)
    return out[:MAX_WARNINGS]
