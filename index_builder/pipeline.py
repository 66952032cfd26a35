"""One build, start to finish: preflight, load, check, hold out, train, add, measure, add the rest, publish.

Every step raises a typed ``BuildFailure``; this module only sequences them and times
each stage. Nothing is written to the version prefix until the index is built and
measured, and the manifest goes last, so a failure at any point leaves no version.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from index_builder import (__version__, build, checks, confidence, faiss_stderr, holdout, measure, memory, params, preflight,
                           publish, sanity, source, tuning)
from index_builder.errors import BuildError, BuildFailure
from index_builder.logs import StageTimer
from indexops_api.build_request import BuildRequest
from indexops_api.layout import version_prefix
from indexops_api.manifest import Manifest, Measurements, SourceFingerprint, Timings
from indexops_store.s3 import ArtifactStore, make_client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    manifest: Manifest
    already_published: bool
    manifest_uri: str


def seed_for(build_key: str) -> int:
    """A 31-bit seed derived from the build key: a retried build samples the same rows."""
    return int(hashlib.sha256(build_key.encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def run(request: BuildRequest, env: Mapping[str, str], workdir: Path | None = None) -> Outcome:
    """Build and publish the version described by ``request``; raise ``BuildFailure`` on any error."""
    spec = request.spec
    timer = StageTimer()
    prefix = version_prefix(spec.storage.prefix, request.namespace, request.index, spec.horizon, request.version)
    store = ArtifactStore(make_client(spec.storage.endpoint, spec.storage.region), spec.storage.bucket)
    manifest_uri = f"s3://{store.bucket}/{prefix}/manifest.json"
    log.info(
        "build started",
        extra={"index": request.index, "namespace": request.namespace, "version": request.version,
               "indexType": spec.index_type.value, "metric": spec.metric.value, "target": manifest_uri},
    )
    with timer.stage("preflight"):
        if spec.factory:  # a bad factory string fails before any data is read
            build.validate_factory(spec.factory, spec.dimension, spec.metric)
        existing = publish.existing_manifest(store, prefix, request.build_key)
    if existing is not None:
        log.info("version already published by this build; nothing to do", extra={"manifest": manifest_uri})
        return Outcome(existing, True, manifest_uri)

    with tempfile.TemporaryDirectory(prefix="faiss-build-", dir=workdir) as tmp:
        work = Path(tmp)
        with timer.stage("load"):
            # Memory preflight as soon as the row count is known, before vector data is read.
            fetched = source.load(spec, env, work, on_count=lambda count: preflight.plan(spec, count))
            matrix = fetched.vectors
            n = checks.check_shape(matrix.shape, matrix.dtype, name=fetched.uri, dimension=spec.dimension)
            plan = preflight.plan(spec, n)  # memory: fail before scanning values or training
            resolved = params.resolve(spec.index_type, spec.parameters, n)
            checks.check_count(
                n, name=fetched.uri, min_vectors=spec.validation.min_vectors,
                index_type=spec.index_type, resolved=resolved,
            )
            checks.check_values(matrix, name=fetched.uri, metric=spec.metric)
            ids = _load_ids(fetched, n)
        log.info("source loaded", extra={"uri": fetched.uri, "vectors": n, "dtype": str(matrix.dtype),
                                         "parameters": resolved.build, "searchParameters": resolved.search})
        seed = seed_for(request.build_key)
        if plan.index_type is not None:
            checks.check_count(n, name=fetched.uri, min_vectors=spec.validation.min_vectors,
                               index_type=plan.index_type, resolved=plan.resolved)
        log.info("build planned", extra={"factory": plan.factory, "parameters": plan.resolved.build,
                                         "memoryEstimateBytes": plan.estimate.total, "memoryBudgetBytes": plan.budget,
                                         **({"auto": plan.auto.reason} if plan.auto else {})})
        try:
            index = build.new_index(spec.dimension, spec.metric, plan.factory, plan.resolved.build, spec.parameters)
            held = holdout.holdout_rows(n, spec.validation.queries, seed ^ 1, name=fetched.uri,
                                        keep=build.min_rows_to_train(index, plan.index_type, plan.resolved))
            kept = n - len(held)
            log.info("validation rows held out", extra={"heldOut": len(held), "indexedWhileMeasured": kept})
            with timer.stage("train"), faiss_stderr.captured() as faiss_warnings:
                trained_on = build.train(index, matrix, spec.metric,
                                         build.training_rows_for(index, plan.index_type, plan.resolved, kept),
                                         seed, plan.factory, held)
            warnings = sanity.merge(sanity.check(plan.index_type, plan.resolved, spec.parameters, kept=kept,
                                                 training_rows=trained_on or kept, k=spec.validation.k),
                                    faiss_warnings)
            for warning in warnings:
                log.warning("build warning", extra={"warning": warning})
            with timer.stage("add", rows=kept):
                build.add_kept(index, matrix, spec.metric, held)
            search = (plan.resolved.search if plan.index_type is not None
                      else build.factory_search_parameters(index, spec.parameters))
            tune_k = (spec.tuning.k or spec.validation.k) if spec.tuning else spec.validation.k
            with timer.stage("validate", queries=len(held), k=spec.validation.k):
                queries = measure.held_out(matrix, held, metric=spec.metric, k=max(spec.validation.k, tune_k))
                tuned = (tuning.tune(index, queries, target=spec.tuning.target_recall, k=tune_k, search=search)
                         if spec.tuning else None)
                if tuned is not None:
                    search = {**search, **tuned.chosen}
                measured = measure.measure(index, queries, metric=spec.metric, search=search, k=spec.validation.k)
            log.info("measured", extra={"recallAtK": measured.recall_at_k, "k": measured.k, "searchParameters": search,
                                        "p50Ms": measured.latency_p50_ms, "p99Ms": measured.latency_p99_ms})
            with timer.stage("add", rows=len(held)):
                build.add_held_out(index, queries.vectors, n)
            positions_ids = holdout.index_order(ids, held)  # ids.npy maps index positions to ids
            paths = _write_files(work, index, positions_ids, measured.query_rows)
            results = measure.structural_checks(index, measured, vectors=n, dimension=spec.dimension,
                                                ids=positions_ids, files=paths)
            results += measured.checks
            accounted = memory.breakdown(index, ids=len(positions_ids))
            log.info("checks", extra={"failed": [c.name for c in results if not c.passed], "ran": len(results)})
        except BuildFailure:
            raise
        except (RuntimeError, MemoryError, ValueError) as exc:
            raise BuildError(f"FAISS {plan.factory} build of {n} vectors failed: {build.faiss_message(exc)}") from exc

        with timer.stage("publish"):
            if publish.existing_manifest(store, prefix, request.build_key) is not None:
                log.info("another attempt of this build committed meanwhile; not overwriting")
                return Outcome(store.read_manifest(f"{prefix}/manifest.json"), True, manifest_uri)
            publish.upload(store, prefix, paths)
            manifest = publish.make_manifest(
                request,
                vectors=n,
                parameters=plan.resolved.build,
                search_parameters=search,
                files=publish.file_entries(paths),
                source=SourceFingerprint(uri=fetched.uri, count=n, etag=fetched.etag, last_modified=fetched.last_modified,
                                         watermark=fetched.watermark, content_hash=fetched.content_hash,
                                         window_anchor=fetched.window_anchor),
                measurements=Measurements(
                    recall_at_k=measured.recall_at_k, k=measured.k, queries=len(measured.query_rows),
                    latency_p50_ms=measured.latency_p50_ms, latency_p95_ms=measured.latency_p95_ms,
                    latency_p99_ms=measured.latency_p99_ms,
                    batch_latency_ms_per_query=measured.batch_latency_ms_per_query,
                    memory_bytes=accounted.total,  # FAISS's arrays + ids, not the file size
                    recall_lower_bound=measured.recall_lower_bound, recall_confidence=confidence.CONFIDENCE,
                ),
                timings=Timings(
                    load_seconds=timer.get("load"), train_seconds=timer.get("train"), add_seconds=timer.get("add"),
                    validate_seconds=timer.get("validate"), total_seconds=timer.total(),
                ),
                faiss_version=faiss.__version__,
                builder_version=__version__,
            ).updated(factory=plan.factory, checks=results, auto=plan.auto, tuning=tuned,
                      memory_estimate_bytes=plan.estimate.total, memory=accounted, warnings=warnings)
            written = publish.commit(store, prefix, manifest)
    log.info("build finished", extra={"manifest": manifest_uri, "seconds": timer.total(), "written": written})
    return Outcome(manifest, not written, manifest_uri)


def _load_ids(fetched: source.LoadedSource, n: int) -> np.ndarray:
    if fetched.ids is None:
        return np.arange(n, dtype=np.int64)
    return checks.check_ids(np.asarray(fetched.ids), name=fetched.ids_uri or fetched.uri, n=n)


def _write_files(work: Path, index: faiss.Index, ids: np.ndarray, query_rows: np.ndarray) -> list[Path]:
    out = work / "out"
    out.mkdir()
    index_path = out / publish.INDEX_FILE
    faiss.write_index(index, str(index_path))
    ids_path = out / publish.IDS_FILE
    np.save(ids_path, ids.astype(np.int64, copy=False), allow_pickle=False)
    queries_path = out / publish.QUERIES_FILE
    np.save(queries_path, query_rows.astype(np.int64, copy=False), allow_pickle=False)
    return [index_path, ids_path, queries_path]
