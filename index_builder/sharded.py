"""Sharded builds, stages 1 and 2: train once, then one slice per pod.

A spec with ``shards: N > 1`` is built by three kinds of pod, each a plain run of
``faiss-index-builder`` told its stage by ``FAISS_BUILD_STAGE``:

1. ``train`` (one pod): reads the source (memory-mapped), checks it, holds out the
   validation rows (seeded by the build key, as for one index), trains the empty index
   on a seeded sample and publishes ``trained.faiss`` plus ``shard-plan.json`` (written
   last: the stage's commit marker) into the version's prefix. Nothing there is a
   version until ``manifest.json`` exists.
2. ``shard`` (an Indexed Job, ``JOB_COMPLETION_INDEX`` = the slice): verifies the
   trained file's sha256 and the digest of its trained state, reads and adds only its
   slice's contiguous source rows (``indexops_api.shards.row_ranges``, planned by the
   train stage; ``index_builder.source_slice`` fetches just those rows), answers the held-out
   queries on its slice (approximate, and exact by brute force) so the whole index can
   be measured without any pod holding all of it, appends its held-out rows, and uploads
   ``shard-NNN.faiss``, ``shard-NNN-ids.npy`` and ``shard-NNN-result.npz`` (last). A
   failed slice is retried alone by the Job controller (``backoffLimitPerIndex``); a
   retry redoes only its slice and overwrites its own files.
3. ``finalize`` (one pod, ``index_builder.shard_finalize``): merges or records the
   shards, measures the whole index and commits the manifest.

Without ``FAISS_BUILD_STAGE`` (``faissctl build``, benchmarks) ``run_all`` runs the three
stages in one process, in order. Memory and source reads per slice pod are its slice's
share (plus headers/footers); only the train stage reads the whole source.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from faiss.contrib.exhaustive_search import knn_ground_truth

from index_builder import build, checks, holdout, measure, params, preflight, publish, source, source_slice
from index_builder.errors import BuildError, RequestInvalid, SourceInvalid, StorageFailure
from index_builder.pipeline import Outcome, seed_for
from indexops_api.build_request import BuildRequest
from indexops_api.layout import build_key, version_prefix
from indexops_api.shards import PLAN_FILE, RULE_ROWS, auto_shard_count, row_ranges
from indexops_api.spec import FaissIndexSpec, IndexType
from indexops_store.s3 import ArtifactStore, StorageError, make_client, sha256_file

log = logging.getLogger(__name__)

ENV_STAGE = "FAISS_BUILD_STAGE"
ENV_INDEX = "JOB_COMPLETION_INDEX"  # set by the Job controller on every pod of an Indexed Job
STAGES = ("train", "shard", "finalize")
TRAINED_FILE = "trained.faiss"

QUERY_VECTORS_FILE = "validation-query-vectors.npy"


def shard_index_file(shard: int) -> str:
    return f"shard-{shard:03d}.faiss"


def shard_ids_file(shard: int) -> str:
    return f"shard-{shard:03d}-ids.npy"


def shard_result_file(shard: int) -> str:
    return f"shard-{shard:03d}-result.npz"


def trained_state_digest(index: faiss.Index) -> str:
    """sha256 of the serialized index with its vectors removed: codebooks, quantizer, transforms.

    Two shards may be merged (or served as one index) only when this matches: FAISS
    merges some mismatched trained states without complaint (e.g. SQ ranges).
    """
    empty = faiss.clone_index(index)
    empty.reset()
    for part in build.parts(empty):  # search-time knobs are serialized too, but are not trained state
        if hasattr(part, "nprobe"):
            part.nprobe = 1
        if hasattr(part, "hnsw"):
            part.hnsw.efSearch = 16
    return hashlib.sha256(faiss.serialize_index(empty).tobytes()).hexdigest()


@dataclass(frozen=True)
class Context:
    """Where a stage reads and writes: the version prefix in the artifact store."""

    request: BuildRequest
    store: ArtifactStore
    prefix: str

    @property
    def spec(self) -> FaissIndexSpec:
        return self.request.spec

    @classmethod
    def of(cls, request: BuildRequest) -> "Context":
        spec = request.spec
        store = ArtifactStore(make_client(spec.storage.endpoint, spec.storage.region), spec.storage.bucket)
        prefix = version_prefix(spec.storage.prefix, request.namespace, request.index, spec.horizon, request.version)
        return cls(request, store, prefix)

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def upload(self, path: Path) -> None:
        try:
            self.store.upload_file(path, self.key(path.name))
        except StorageError as exc:
            raise StorageFailure(f"artifact storage: {exc}") from exc

    def put_json(self, name: str, body: dict[str, Any]) -> None:
        try:
            self.store.put_bytes(self.key(name), json.dumps(body, sort_keys=True).encode())
        except StorageError as exc:
            raise StorageFailure(f"artifact storage: {exc}") from exc

    def download(self, name: str, path: Path, *, what: str) -> Path:
        try:
            self.store.download_file(self.key(name), path)
        except StorageError as exc:
            raise BuildError(f"{what} s3://{self.store.bucket}/{self.key(name)} is not readable: {exc}") from exc
        return path

    def read_plan(self, work: Path) -> dict[str, Any]:
        path = self.download(PLAN_FILE, work / PLAN_FILE, what="the train stage's plan")
        plan = json.loads(path.read_text())
        if plan.get("buildKey") != self.request.build_key:
            raise BuildError(f"{PLAN_FILE} belongs to build key {str(plan.get('buildKey'))[:12]}, "
                             f"not {self.request.build_key[:12]}")
        return plan


def run_stage(request: BuildRequest, env: Mapping[str, str], workdir: Path | None = None) -> Outcome | None:
    """Run the stage named by ``FAISS_BUILD_STAGE`` (all of them when unset); the manifest's outcome at the end."""
    stage = env.get(ENV_STAGE, "")
    if not stage:
        return run_all(request, env, workdir)
    if stage not in STAGES:
        raise RequestInvalid(f"{ENV_STAGE}={stage!r} is not one of {', '.join(STAGES)}")
    ctx = Context.of(request)
    if stage == "train":
        train(ctx, env, workdir)
        return None
    if stage == "shard":
        raw = env.get(ENV_INDEX, "")
        if not raw.isdigit() or (not request.spec.auto_shards and int(raw) >= request.spec.shards):
            raise RequestInvalid(f"{ENV_INDEX}={raw!r} is not a slice number below shards={request.spec.shards}")
        add_slice(ctx, env, int(raw), workdir)
        return None
    from index_builder import shard_finalize  # finalize imports this module
    return shard_finalize.finalize(ctx, workdir)


def run_all(request: BuildRequest, env: Mapping[str, str], workdir: Path | None = None) -> Outcome:
    from index_builder import shard_finalize

    ctx = Context.of(request)
    plan = train(ctx, env, workdir)
    for shard in range(int(plan.get("shards", request.spec.shards))):
        add_slice(ctx, env, shard, workdir)
    return shard_finalize.finalize(ctx, workdir)


def _scratch(workdir: Path | None) -> Any:
    import tempfile

    return tempfile.TemporaryDirectory(prefix="faiss-shard-", dir=workdir)


def _resolve(spec: FaissIndexSpec, n: int) -> tuple[IndexType | None, params.ResolvedParameters, str]:
    if spec.factory:
        return None, params.ResolvedParameters(), spec.factory
    resolved = params.resolve(spec.index_type, spec.parameters, n, spec.dimension)
    return spec.index_type, resolved, params.factory_string(spec.index_type, resolved, spec.dimension)


def _ids(loaded: source.LoadedSource, n: int) -> np.ndarray:
    if loaded.ids is None:
        return np.arange(n, dtype=np.int64)
    return checks.check_ids(np.asarray(loaded.ids), name=loaded.ids_uri or loaded.uri, n=n)


def train(ctx: Context, env: Mapping[str, str], workdir: Path | None = None) -> dict[str, Any]:
    """Stage 1: check the source, hold out queries, train once, publish the trained empty index."""
    spec, request = ctx.spec, ctx.request
    started = time.time()
    if publish.existing_manifest(ctx.store, ctx.prefix, request.build_key) is not None:
        log.info("version already published; train stage has nothing to do")
        return {}
    with _scratch(workdir) as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        loaded = source.load(spec, env, work)
        matrix = loaded.vectors
        n = checks.check_shape(matrix.shape, matrix.dtype, name=loaded.uri, dimension=spec.dimension)
        index_type, resolved, factory = _resolve(spec, n)
        shards, reason = choose_shards(spec, index_type, resolved, factory, n)
        if index_type is not None:
            checks.check_count(n, name=loaded.uri, min_vectors=spec.validation.min_vectors,
                               index_type=index_type, resolved=resolved)
            per_slice = preflight.estimate_typed(index_type, resolved, n=math.ceil(n / shards),
                                                 dimension=spec.dimension, queries=spec.validation.queries,
                                                 k=spec.validation.k)
            preflight.check_memory(per_slice, preflight.memory_budget(spec),
                                   what=f"one slice of {factory!r} ({n} vectors / {shards} shards)",
                                   source=preflight.budget_source(spec))
        checks.check_values(matrix, name=loaded.uri, metric=spec.metric)
        ids = _ids(loaded, n)  # duplicate or negative ids fail here, once, not in N pods
        load_seconds = time.perf_counter() - t0
        seed = whole_index_seed(spec)
        try:
            index = build.new_index(spec.dimension, spec.metric, factory, resolved.build, spec.parameters)
            held = holdout.holdout_rows(n, spec.validation.queries, seed ^ 1, name=loaded.uri,
                                        keep=build.min_rows_to_train(index, index_type, resolved))
            t1 = time.perf_counter()
            build.train(index, matrix, spec.metric, build.training_rows_for(index, index_type, resolved, n - len(held)),
                        seed, factory, held)
            train_seconds = time.perf_counter() - t1
        except (RuntimeError, MemoryError, ValueError) as exc:
            raise BuildError(f"FAISS {factory} training failed: {build.faiss_message(exc)}") from exc
        search = resolved.search if index_type is not None else build.factory_search_parameters(index, spec.parameters)
        trained_path = work / TRAINED_FILE
        faiss.write_index(index, str(trained_path))
        queries_path = work / QUERY_VECTORS_FILE
        np.save(queries_path, build.prepare(matrix[held], spec.metric), allow_pickle=False)
        plan = {
            "buildKey": request.build_key, "vectors": n, "shards": shards, "autoReason": reason,
            "heldOut": held.tolist(),
            "factory": factory, "indexType": index_type.value if index_type else None,
            "parameters": resolved.build, "searchParameters": search, "k": spec.validation.k,
            "trainedSha256": sha256_file(trained_path), "trainedStateSha256": trained_state_digest(index),
            "rule": RULE_ROWS, "slices": plan_slices(ids, shards),
            "source": {"uri": loaded.uri, "etag": loaded.etag, "lastModified": loaded.last_modified,
                       "watermark": loaded.watermark, "contentHash": loaded.content_hash,
                       "windowAnchor": loaded.window_anchor},
            "startedAt": started, "loadSeconds": load_seconds, "trainSeconds": train_seconds,
        }
        ctx.upload(trained_path)
        ctx.upload(queries_path)
        ctx.put_json(PLAN_FILE, plan)  # last: the stage's commit marker
    log.info("trained index published", extra={"factory": factory, "vectors": n, "shards": shards, "why": reason,
                                                "heldOut": len(held), "trainedStateSha256": plan["trainedStateSha256"]})
    return plan


def whole_index_seed(spec: FaissIndexSpec) -> int:
    """The seed of the held-out and training rows: the one an unsharded build of this spec uses.

    The operator's build key of the same spec as one index (``shards: 1``), so a sharded build
    holds out the same validation queries and trains the same coarse quantizer and codebooks as
    an unsharded build of the same data and parameters: IVF shards then answer exactly as that
    index does, and the two recall figures are measured on the same queries.
    """
    return seed_for(build_key(spec.updated(shards=1, auto_shards=False)))


def choose_shards(spec: FaissIndexSpec, index_type: IndexType | None, resolved: params.ResolvedParameters,
                  factory: str, n: int) -> tuple[int, str | None]:
    """``spec.shards``, or with ``autoShards`` the count the serving memory limit needs (and why)."""
    if not spec.auto_shards:
        return spec.shards, None
    from index_builder.shard_finalize import serving_memory_limit  # finalize imports this module

    size = (preflight.index_bytes(index_type, resolved.build, n, spec.dimension) if index_type is not None
            else preflight.factory_index_bytes(factory, n, spec.dimension))
    return auto_shard_count(size + 8 * n, n, serving_memory_limit(spec))  # + the ids


def plan_slices(ids: np.ndarray, shards: int) -> list[dict[str, Any]]:
    """Every slice's rows and, for sources read by id range (PostgreSQL: rows in id order), its ids."""
    n, out = len(ids), []
    for shard, (first, rows) in enumerate(row_ranges(n, shards)):
        end = first + rows
        out.append({"shard": shard, "firstRow": first, "rows": rows,
                    "firstId": int(ids[first]) if rows else None, "endId": int(ids[end]) if end < n else None})
    return out


def add_slice(ctx: Context, env: Mapping[str, str], shard: int, workdir: Path | None = None) -> dict[str, Any]:
    """Stage 2 for one slice: add its rows to the trained index, answer the held-out queries, upload."""
    spec = ctx.spec
    with _scratch(workdir) as tmp:
        work = Path(tmp)
        plan = ctx.read_plan(work)
        if shard >= int(plan["shards"]):
            raise RequestInvalid(f"{ENV_INDEX}={shard} is not a slice number below the planned {plan['shards']} shards")
        trained = ctx.download(TRAINED_FILE, work / TRAINED_FILE, what="the trained index")
        if sha256_file(trained) != plan["trainedSha256"]:
            raise BuildError(f"{TRAINED_FILE} does not match the sha256 recorded by the train stage")
        index = faiss.read_index(str(trained))
        state = trained_state_digest(index)
        if state != plan["trainedStateSha256"]:
            raise BuildError(f"trained state digest {state[:12]} != {plan['trainedStateSha256'][:12]} from the train stage")
        t0 = time.perf_counter()
        planned = plan["slices"][shard]
        got = source_slice.load_slice(spec, env, source_slice.Planned(
            vectors=int(plan["vectors"]), first=int(planned["firstRow"]), rows=int(planned["rows"]),
            etag=plan["source"]["etag"], first_id=planned["firstId"], end_id=planned["endId"],
            window_anchor=plan["source"]["windowAnchor"]), work)
        matrix, ids = got.vectors, got.ids  # this slice's rows only; positions below are local
        first = int(planned["firstRow"])
        held = np.asarray(plan["heldOut"], dtype=np.int64)
        held = held[(held >= first) & (held < first + len(ids))] - first
        mine_held = np.sort(held)
        mine_kept = np.setdiff1d(np.arange(len(ids), dtype=np.int64), mine_held)
        log.info("slice rows read", extra={"shard": shard, "firstRow": first, "rows": len(ids),
                                           "fetchedBytes": got.fetched_bytes})
        load_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        step = build.batch_rows(spec.dimension)
        for start in range(0, len(mine_kept), step):
            index.add(build.prepare(matrix[mine_kept[start:start + step]], spec.metric))
        add_seconds = time.perf_counter() - t1
        queries = np.load(ctx.download(QUERY_VECTORS_FILE, work / QUERY_VECTORS_FILE, what="the held-out queries"))
        k = int(plan["k"])
        build.apply_search_parameters(index, plan["searchParameters"])
        approx_d, approx_pos = index.search(queries, k)
        latency = measure.single_query_seconds(index, queries, k)
        exact_d, exact_pos = _exact(matrix, mine_kept, queries, k, spec)
        kept_ids = ids[mine_kept]
        index.add(build.prepare(matrix[mine_held], spec.metric))
        shard_ids = np.concatenate([kept_ids, ids[mine_held]]).astype(np.int64)
        if index.ntotal != len(shard_ids):
            raise BuildError(f"slice {shard} holds {index.ntotal} vectors after adding {len(shard_ids)}")
        index_path, ids_path = work / shard_index_file(shard), work / shard_ids_file(shard)
        faiss.write_index(index, str(index_path))
        np.save(ids_path, shard_ids, allow_pickle=False)
        result = {
            "approx_ids": _to_ids(approx_pos, kept_ids), "approx_distances": approx_d,
            "exact_ids": _to_ids(exact_pos, kept_ids), "exact_distances": exact_d,
            "latency_seconds": np.asarray(latency), "vectors": np.int64(index.ntotal),
            "measured_vectors": np.int64(len(mine_kept)), "load_seconds": np.float64(load_seconds),
            "add_seconds": np.float64(add_seconds), "first_row": np.int64(first),
            "source_rows": np.int64(len(ids)), "source_bytes": np.int64(got.fetched_bytes),
        }
        result_path = work / shard_result_file(shard)
        buffer = io.BytesIO()
        np.savez(buffer, **result, build_key=np.array(ctx.request.build_key), trained_state=np.array(state),
                 index_sha256=np.array(sha256_file(index_path)), ids_sha256=np.array(sha256_file(ids_path)))
        result_path.write_bytes(buffer.getvalue())
        ctx.upload(index_path)
        ctx.upload(ids_path)
        ctx.upload(result_path)  # last: the slice's commit marker
    log.info("slice published", extra={"shard": shard, "of": plan["shards"], "vectors": int(len(shard_ids)),
                                       "addSeconds": round(add_seconds, 3)})
    return result


def _to_ids(positions: np.ndarray, ids: np.ndarray) -> np.ndarray:
    out = np.full(positions.shape, -1, dtype=np.int64)
    found = positions >= 0
    out[found] = ids[positions[found]]
    return out


def _exact(matrix: np.ndarray, rows: np.ndarray, queries: np.ndarray, k: int,
           spec: FaissIndexSpec) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of the queries among this slice's kept rows, streamed in batches."""
    if len(rows) == 0:
        return (np.full((queries.shape[0], k), np.nan, dtype=np.float32),
                np.full((queries.shape[0], k), -1, dtype=np.int64))
    step = build.batch_rows(spec.dimension)
    batches = (build.prepare(matrix[rows[s:s + step]], spec.metric) for s in range(0, len(rows), step))
    return knn_ground_truth(queries, batches, k, build.faiss_metric(spec.metric))
