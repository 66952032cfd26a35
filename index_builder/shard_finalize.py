"""Sharded builds, stage 3: measure the whole index, merge or keep the shards, commit.

Every slice pod left its answers to the held-out queries (approximate on its slice, and
exact by brute force over its slice). Merging those answers with the fan-out's own rule
(``indexops_api.shards.merge_topk``) gives the whole index's approximate top-k and the
exact top-k over all vectors, so recall@k is measured for the **whole** sharded index
without any pod holding it. Single-query latency of a fan-out is the slowest shard's, so
the p50/p95/p99 are taken over the per-query maximum of the slices' latencies (the
fan-out's HTTP overhead is not in it; ``bench/scale_bench.py`` measures that).

Then, with ``shardMerge: Auto``, IVF-family and flat shards whose merged size fits the
serving memory limit are merged into one ``index.faiss`` (``merge_from``, after checking
that every shard's trained-state digest equals the trained index's) and measured again
directly; HNSW graphs cannot be merged, and big indexes stay as shards. The manifest goes
last and lists every file the version needs, so a version is all shards or nothing.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index_builder import __version__, build, checks, measure, preflight, publish
from index_builder.errors import BuildError
from index_builder.pipeline import Outcome
from index_builder.sharded import (
    PLAN_FILE, QUERY_VECTORS_FILE, TRAINED_FILE, Context, _scratch, shard_ids_file, shard_index_file,
    shard_result_file, trained_state_digest,
)
from indexops_api.manifest import (
    SHARD_RULE, CheckResult, FileEntry, Measurements, ShardFile, Sharding, SliceRows, SourceFingerprint, Timings,
)
from indexops_api.shards import merge_topk
from indexops_api.spec import FaissIndexSpec, Metric, ShardMerge

log = logging.getLogger(__name__)

SERVING_MEMORY_DEFAULT = 4 * 2**30  # the serving container's default memory limit (objects.build_deployment)
MERGE_HEADROOM = 2.0  # a merged index must fit twice: old and new version side by side during a swap


def finalize(ctx: Context, workdir: Path | None = None) -> Outcome:
    spec, request = ctx.spec, ctx.request
    uri = f"s3://{ctx.store.bucket}/{ctx.key('manifest.json')}"
    existing = publish.existing_manifest(ctx.store, ctx.prefix, request.build_key)
    if existing is not None:
        return Outcome(existing, True, uri)
    with _scratch(workdir) as tmp:
        work = Path(tmp)
        plan = ctx.read_plan(work)
        t0 = time.perf_counter()
        shards = int(plan["shards"])  # spec.shards, or what autoShards chose in the train stage
        results = [_read_result(ctx, work, shard, plan) for shard in range(shards)]
        k = int(plan["k"])
        larger = spec.metric is not Metric.L2
        _, exact = merge_topk([r["exact_distances"] for r in results], [r["exact_ids"] for r in results], k,
                              larger_is_better=larger)
        fan_d, fan_i = merge_topk([r["approx_distances"] for r in results], [r["approx_ids"] for r in results], k,
                                  larger_is_better=larger)
        recall = measure.recall_at_k(fan_i, exact, k)
        seconds = np.max(np.stack([r["latency_seconds"] for r in results]), axis=0)
        p50, p95, p99 = measure.latency_percentiles(list(seconds))
        vectors = int(sum(int(r["vectors"]) for r in results))
        checks_run = [
            checks.check_equal("shardVectorsSumToSource", "sum of shard vectors", vectors, int(plan["vectors"])),
            checks.check_results_have_k(fan_i, k),
            checks.check_no_duplicate_ids(fan_i),
            checks.check_distances_monotonic(fan_d.astype(np.float32), fan_i, spec.metric),
        ]
        shard_bytes = sum(_size(ctx, shard_index_file(s)) for s in range(shards))
        merged = _should_merge(spec, plan, shard_bytes)
        rows_path = work / publish.QUERIES_FILE
        np.save(rows_path, np.asarray(plan["heldOut"], dtype=np.int64), allow_pickle=False)
        ctx.upload(rows_path)
        if merged:
            paths, measured = _merge(ctx, work, plan, results, exact, k)
            recall, (p50, p95, p99) = measured
            entries = publish.file_entries(paths + [rows_path])
        else:
            # The shard files stay where the slices put them: listed with the sha256 each slice
            # computed before uploading and the size storage reports (serving verifies both).
            trained = ctx.download(TRAINED_FILE, work / TRAINED_FILE, what="the trained index")
            entries = publish.file_entries([trained])
            for shard, r in enumerate(results):
                for name, key in ((shard_index_file(shard), "index_sha256"), (shard_ids_file(shard), "ids_sha256")):
                    entries.append(FileEntry(name=name, size=_size(ctx, name), sha256=str(r[key])))
            entries += publish.file_entries([rows_path])
        validate_seconds = time.perf_counter() - t0
        sharding = Sharding(
            shards=shards, trained_state_sha256=plan["trainedStateSha256"], merged=merged,
            rule=plan.get("rule", SHARD_RULE), auto_reason=plan.get("autoReason"),
            slices=[SliceRows(shard=s, first_row=int(r["first_row"]), rows=int(r["source_rows"]),
                              source_bytes=int(r["source_bytes"])) for s, r in enumerate(results) if "first_row" in r],
            shard_files=[] if merged else [
                ShardFile(shard=s, index_file=shard_index_file(s), ids_file=shard_ids_file(s), vectors=int(r["vectors"]))
                for s, r in enumerate(results)
            ],
        )
        manifest = _manifest(ctx, plan, results, entries, sharding, vectors,
                             Measurements(recall_at_k=recall, k=k, queries=len(plan["heldOut"]), latency_p50_ms=p50,
                                          latency_p95_ms=p95, latency_p99_ms=p99,
                                          memory_bytes=sum(e.size for e in entries[:-1])),
                             checks_run, validate_seconds)
        written = publish.commit(ctx.store, ctx.prefix, manifest)
    log.info("sharded version committed", extra={"manifest": uri, "shards": shards, "merged": merged,
                                                 "recallAtK": recall, "p99Ms": p99})
    return Outcome(manifest, not written, uri)


def _read_result(ctx: Context, work: Path, shard: int, plan: dict[str, Any]) -> dict[str, Any]:
    name = shard_result_file(shard)
    path = ctx.download(name, work / name, what=f"slice {shard}'s result (did slice {shard} finish?)")
    with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
        result = {key: data[key] for key in data.files}
    if str(result["build_key"]) != ctx.request.build_key:
        raise BuildError(f"{name} belongs to another build")
    if str(result["trained_state"]) != plan["trainedStateSha256"]:
        raise BuildError(f"slice {shard} was built from another trained state "
                         f"({str(result['trained_state'])[:12]} != {plan['trainedStateSha256'][:12]})")
    return result


def _size(ctx: Context, name: str) -> int:
    return ctx.store.client.head_object(Bucket=ctx.store.bucket, Key=ctx.key(name))["ContentLength"]


def mergeable(factory: str) -> bool:
    """IVF families and flat codes have ``merge_from``; graphs (HNSW) do not."""
    return factory.startswith(("IVF", "Flat"))  # an HNSW coarse quantizer (IVF..._HNSW32) is shared trained state


def serving_memory_limit(spec: FaissIndexSpec) -> int:
    limits = (spec.serving.resources.limits or {}) if spec.serving.resources else {}
    raw = limits.get("memory")
    return preflight.parse_quantity(raw) if raw else SERVING_MEMORY_DEFAULT


def _should_merge(spec: FaissIndexSpec, plan: dict[str, Any], shard_bytes: int) -> bool:
    if int(plan["shards"]) == 1:  # autoShards chose one: the only slice is the index, served as usual
        return True
    if spec.shard_merge is ShardMerge.NEVER or not mergeable(plan["factory"]):
        return False
    fits = shard_bytes * MERGE_HEADROOM <= serving_memory_limit(spec)
    log.info("merge decision", extra={"shardBytes": shard_bytes, "servingLimit": serving_memory_limit(spec), "fits": fits})
    return fits


def _merge(ctx: Context, work: Path, plan: dict[str, Any], results: list[dict[str, Any]], exact: np.ndarray,
           k: int) -> tuple[list[Path], tuple[float, tuple[float, float, float]]]:
    """merge_from every shard into the trained index (digests checked), then measure it directly."""
    spec = ctx.spec
    index = faiss.read_index(str(ctx.download(TRAINED_FILE, work / TRAINED_FILE, what="the trained index")))
    ids, held = [], []
    for shard, result in enumerate(results):
        path = ctx.download(shard_index_file(shard), work / shard_index_file(shard), what=f"slice {shard}")
        part = faiss.read_index(str(path))
        state = trained_state_digest(part)
        if state != plan["trainedStateSha256"]:
            raise BuildError(f"slice {shard}'s trained state {state[:12]} differs from the trained index's; not merging")
        if len(results) == 1:  # one slice (autoShards): it is the index, whatever its type (HNSW has no merge_from)
            index = part
        else:
            # IVF lists store ids: shift the slice's positions behind what is merged so far;
            # flat codes are positional and refuse an offset.
            index.merge_from(part, index.ntotal if faiss.try_extract_index_ivf(index) is not None else 0)
        del part
        path.unlink()
        shard_ids = np.load(ctx.download(shard_ids_file(shard), work / shard_ids_file(shard), what=f"slice {shard}"))
        ids.append(shard_ids)
        held.append(shard_ids[int(result["measured_vectors"]):])  # each slice appended its held-out rows last
    all_ids = np.concatenate(ids).astype(np.int64)
    queries = np.load(ctx.download(QUERY_VECTORS_FILE, work / QUERY_VECTORS_FILE, what="the held-out queries"))
    build.apply_search_parameters(index, plan["searchParameters"])
    # The merged index holds the held-out rows too; as the slices did, a query's own row (and
    # the other held-out rows) never count: search deeper and drop them before taking k.
    held_ids = np.concatenate(held) if held else np.array([], dtype=np.int64)
    _, positions = index.search(queries, k + len(held_ids))
    answered = np.where(positions >= 0, all_ids[np.maximum(positions, 0)], -1)
    answered = np.where(np.isin(answered, held_ids), -2, answered)
    approx = np.array([np.concatenate([row[row != -2], np.full(k, -1)])[:k] for row in answered], dtype=np.int64)
    recall = measure.recall_at_k(approx, exact, k)
    latency = measure.latency_percentiles(measure.single_query_seconds(index, queries, k))
    out = work / "out"
    out.mkdir()
    index_path, ids_path = out / publish.INDEX_FILE, out / publish.IDS_FILE
    faiss.write_index(index, str(index_path))
    np.save(ids_path, all_ids, allow_pickle=False)
    ctx.upload(index_path)
    ctx.upload(ids_path)
    return [index_path, ids_path], (recall, latency)


def _manifest(ctx: Context, plan: dict[str, Any], results: list[dict[str, Any]], entries: list[FileEntry],
              sharding: Sharding, vectors: int, measurements: Measurements, checks_run: list[CheckResult],
              validate_seconds: float) -> Any:
    spec, request = ctx.spec, ctx.request
    src = plan["source"]
    add_seconds = max(float(r["add_seconds"]) for r in results)
    load_seconds = plan["loadSeconds"] + max(float(r["load_seconds"]) for r in results)
    merged = sharding.merged
    manifest = publish.make_manifest(
        request, vectors=vectors, parameters=plan["parameters"], search_parameters=plan["searchParameters"],
        files=entries,
        source=SourceFingerprint(uri=src["uri"], count=vectors, etag=src["etag"], last_modified=src["lastModified"],
                                 watermark=src["watermark"], content_hash=src["contentHash"],
                                 window_anchor=src["windowAnchor"]),
        measurements=measurements,
        timings=Timings(load_seconds=load_seconds, train_seconds=plan["trainSeconds"], add_seconds=add_seconds,
                        validate_seconds=validate_seconds, total_seconds=max(0.0, time.time() - plan["startedAt"])),
        faiss_version=faiss.__version__, builder_version=__version__,
    )
    files = {
        "index_file": publish.INDEX_FILE if merged else shard_index_file(0),
        "ids_file": publish.IDS_FILE if merged else shard_ids_file(0),
        "factory": plan["factory"], "checks": checks_run, "sharding": sharding,
    }
    return manifest.updated(**files)
