"""Pure preflight: what will be built, and does it fit in the memory the build may use?

A build that runs out of memory dies with OOMKilled after minutes of training and says
nothing useful. Instead the builder estimates its peak memory from the index type, its
parameters, the number of vectors and the dimension (autofaiss does the same before
training) and refuses at once with ``InsufficientMemory: needs ~X GiB, limit Y GiB``
when the estimate is above ``build.maxMemory`` (else ``build.resources.limits.memory``).

The estimate is deliberately simple and errs high. It counts:

* the finished index: codes/vectors, graph links, ids, centroids, codebooks, tables;
* the training sample (float32, counted twice: our copy and FAISS's k-means/OPQ copy);
* one add batch and one ground-truth batch (each converted to float32 and copied once);
* the held-out queries and their exact/approximate results;
* a fixed 256 MiB for the interpreter, numpy, FAISS and the S3 client.

The source matrix itself is memory-mapped and read in batches, so it is page cache the
kernel can reclaim, not counted. Raw factory strings are estimated as if their codes were
flat float32 (an upper bound for PQ/SQ factories), plus HNSW links when the string has one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from index_builder import params
from index_builder.errors import BuildFailure
from index_builder.params import ResolvedParameters
from indexops_api.manifest import AutoChoice
from indexops_api.spec import Encoding, FaissIndexSpec, IndexType

BASELINE_BYTES = 256 * 2**20
BATCH_BYTES = 64 * 2**20  # mirrors build.BATCH_BYTES (this module may not import faiss code)
HNSW_UPPER_LEVELS = 1.1  # links above level 0 add ~1/ln(m) of level 0's; 10 % is generous
PRECOMPUTED_TABLE_MAX = 2 * 2**30  # FAISS's precomputed_table_max_bytes
_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")


class FactoryInvalid(BuildFailure):
    """``spec.factory`` is not a FAISS index_factory string FAISS accepts for the dimension."""

    code = "FactoryInvalid"


class InsufficientMemory(BuildFailure):
    """The estimated build memory is above ``build.maxMemory`` / the memory limit."""

    code = "InsufficientMemory"


def parse_quantity(text: str) -> int:
    """A Kubernetes memory quantity (``8Gi``, ``512M``, ``1.5Gi``, ``1000``) in bytes."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a memory quantity like 8Gi or 512Mi")
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


def memory_budget(spec: FaissIndexSpec) -> int | None:
    """``build.maxMemory``, else ``build.resources.limits.memory``, else None (unlimited)."""
    if spec.build.max_memory:
        return parse_quantity(spec.build.max_memory)
    limits = spec.build.resources.limits if spec.build.resources else None
    if limits and limits.get("memory"):
        return parse_quantity(limits["memory"])
    return None


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB"


def index_bytes(index_type: IndexType, build: dict[str, int], n: int, dimension: int,
                encoding: Encoding = Encoding.FLAT) -> int:
    """Bytes the finished index holds in memory (``encoding``: how HNSW / IVF store vectors)."""
    d = dimension
    stored = params.encoding_bytes_per_vector(encoding, d)
    if index_type is IndexType.FLAT:
        return n * d * 4
    if index_type is IndexType.HNSW:
        links = 2 * build["m"] * 4 * HNSW_UPPER_LEVELS
        return int(n * (stored + links + 12))  # + offsets (8) and level (4) per node
    if index_type is IndexType.IVF:
        return n * (stored + 8) + build["nlist"] * d * 4
    m, bits = build["nSubquantizers"], build["mPq"]
    code = math.ceil(m * bits / 8)
    codebook = (1 << bits) * d * 4
    if index_type is IndexType.IVFPQ:
        table = min(build["nlist"] * m * (1 << bits) * 4, PRECOMPUTED_TABLE_MAX)
        return n * (code + 8) + build["nlist"] * d * 4 + codebook + table
    if index_type is IndexType.OPQ_HNSW:
        links = 2 * build["mHnsw"] * 4 * HNSW_UPPER_LEVELS
        return int(n * (code + links + 12)) + d * d * 4 + codebook
    raise ValueError(f"no memory model for indexType {index_type!r}")


def factory_index_bytes(factory: str, n: int, dimension: int) -> int:
    """Upper bound for a raw factory string: flat float32 codes, plus links if it has HNSW."""
    hnsw = re.search(r"HNSW(\d*)", factory)
    links = 2 * int(hnsw.group(1) or 32) * 4 * HNSW_UPPER_LEVELS if hnsw else 0
    ivf = re.search(r"IVF(\d+)", factory)
    centroids = int(ivf.group(1)) * dimension * 4 if ivf else 0
    return int(n * (dimension * 4 + links + 12)) + centroids


@dataclass(frozen=True)
class Estimate:
    index: int
    training: int
    batches: int
    queries: int
    baseline: int = BASELINE_BYTES

    @property
    def total(self) -> int:
        return self.index + self.training + self.batches + self.queries + self.baseline

    def describe(self) -> str:
        return (f"index {gib(self.index)} + training sample {gib(self.training)} + add/ground-truth batches "
                f"{gib(self.batches)} + queries {gib(self.queries)} + runtime {gib(self.baseline)}")


def estimate(
    *, index: int, training_rows: int, n: int, dimension: int, queries: int, k: int
) -> Estimate:
    """Peak build memory from the finished index's size and the work around it."""
    batch = min(n, max(1024, BATCH_BYTES // (4 * dimension))) * dimension * 4
    q = min(queries, n)
    return Estimate(
        index=index,
        training=2 * training_rows * dimension * 4,
        batches=2 * batch,  # the larger of: one add batch; a ground-truth batch and its IndexFlat copy
        queries=q * dimension * 4 + 2 * q * k * 12,  # vectors + exact and approximate (id, distance) rows
    )


def estimate_typed(
    index_type: IndexType, resolved: ResolvedParameters, *, n: int, dimension: int, queries: int, k: int
) -> Estimate:
    return estimate(
        index=index_bytes(index_type, resolved.build, n, dimension, resolved.encoding)
        + n * params.refine_bytes_per_vector(resolved.refine, dimension),
        training_rows=params.training_rows(index_type, resolved, n),
        n=n, dimension=dimension, queries=queries, k=k,
    )


def check_memory(needed: Estimate, budget: int | None, *, what: str, source: str) -> None:
    """Raise ``InsufficientMemory`` when ``needed`` is above ``budget`` (None = unlimited)."""
    if budget is not None and needed.total > budget:
        raise InsufficientMemory(
            f"needs ~{gib(needed.total)}, limit {gib(budget)} ({source}) to build {what}: {needed.describe()}; "
            "raise the limit, or choose a smaller index (IVFPQ/OPQ+HNSW, fewer nSubquantizers, indexType Auto)"
        )


def budget_source(spec: FaissIndexSpec) -> str:
    return "build.maxMemory" if spec.build.max_memory else "build.resources.limits.memory"


@dataclass(frozen=True)
class BuildPlan:
    """What will be built: the effective type (Auto resolved), parameters, factory string and memory."""

    index_type: IndexType | None  # None: a raw factory string decides the structure
    resolved: ResolvedParameters
    factory: str
    auto: AutoChoice | None
    estimate: Estimate
    budget: int | None


def plan(spec: FaissIndexSpec, n: int) -> BuildPlan:
    """Resolve the effective index for ``n`` vectors and refuse it if it cannot fit in memory."""
    from index_builder import auto  # auto uses this module's estimates; imported here to avoid a cycle

    budget = memory_budget(spec)
    queries = spec.validation.queries
    k = max(spec.validation.k, (spec.tuning.k or 0) if spec.tuning else 0)
    index_type: IndexType | None
    choice: AutoChoice | None = None
    if spec.factory:
        index_type, resolved, factory = None, ResolvedParameters(), spec.factory
        needed = estimate(
            index=factory_index_bytes(factory, n, spec.dimension),
            training_rows=min(n, 256 * 256), n=n, dimension=spec.dimension, queries=queries, k=k,
        )
    else:
        if spec.index_type is IndexType.AUTO:
            decision = auto.choose(n=n, dimension=spec.dimension, budget=budget,
                                   target_recall=auto.target_recall(spec), queries=queries, k=k)
            index_type, resolved = decision.index_type, decision.resolved
            choice = AutoChoice(index_type=index_type, factory=decision.factory, reason=decision.reason)
        else:
            index_type = spec.index_type
            resolved = params.resolve(index_type, spec.parameters, n, spec.dimension)
        factory = params.factory_string(index_type, resolved, spec.dimension)
        needed = estimate_typed(index_type, resolved, n=n, dimension=spec.dimension, queries=queries, k=k)
    check_memory(needed, budget, what=f"{factory!r} over {n} x {spec.dimension} vectors", source=budget_source(spec))
    return BuildPlan(index_type, resolved, factory, choice, needed, budget)
