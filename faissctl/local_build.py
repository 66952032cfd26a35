"""``faissctl build``: turn a FaissIndex manifest into a build request and build it into a folder.

The version id and build key are derived exactly as the operator derives them, and the
builder pipeline is the one a builder Job runs (``index_builder.local`` only swaps S3 for a
folder), so what a laptop build measures is what the cluster would measure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from faissctl.errors import CtlError
from indexops_api.build_request import BuildRequest
from indexops_api.layout import build_key, version_id
from indexops_api.manifest import Manifest
from indexops_api.spec import FaissIndexSpec

LOCAL_NAMESPACE = "local"


def _resolve(path: str | None, base: Path) -> str | None:
    if path is None or Path(path).is_absolute():
        return path
    return str(base / path)


def request_from(doc: dict[str, Any], base: Path, now: datetime) -> BuildRequest:
    """The BuildRequest for a validated FaissIndex document; relative file paths are taken from ``base``."""
    meta, raw = doc.get("metadata") or {}, copy.deepcopy(doc["spec"])
    source = raw.get("source") or {}
    if "file" not in source:
        kinds = ", ".join(sorted(source)) or "none"
        raise CtlError(
            f"faissctl build reads local files only: spec.source must be `file` (a local .npy), not {kinds}. "
            "Copy the manifest and replace its source with `file: {path: vectors.npy}`"
        )
    source["file"]["path"] = _resolve(source["file"].get("path"), base)
    source["file"]["idsPath"] = _resolve(source["file"].get("idsPath"), base)
    if source["file"]["idsPath"] is None:
        del source["file"]["idsPath"]
    spec = FaissIndexSpec.model_validate(raw)
    key = build_key(spec)
    return BuildRequest(index=meta["name"], namespace=meta.get("namespace") or LOCAL_NAMESPACE,
                        version=version_id(now, key), build_key=key, spec=spec)


def build(request: BuildRequest, out: Path, env: Mapping[str, str], workdir: Path | None = None) -> tuple[Manifest, bool]:
    """Run the builder; returns the manifest and whether the version already existed in ``out``."""
    from index_builder.errors import BuildFailure  # noqa: PLC0415 - faiss is slow to import; validate never needs it
    from index_builder.local import run_to_directory  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    try:
        outcome = run_to_directory(request, out, env, workdir)
    except BuildFailure as failure:
        raise CtlError(f"build failed: {failure.termination_message()}") from None
    return outcome.manifest, outcome.already_published


def report(manifest: Manifest, folder: Path, gate_problems: list[str]) -> dict[str, Any]:
    """What ``faissctl build`` prints (as JSON/YAML, or rendered by the command)."""
    m = manifest.measurements
    return {
        "version": manifest.version,
        "path": str(folder),
        "files": [{"name": f.name, "size": f.size} for f in manifest.files] + [{"name": "manifest.json", "size": None}],
        "indexType": manifest.index_type.value,
        "factory": manifest.factory,
        "vectors": manifest.vectors,
        "sizeBytes": manifest.size_bytes,
        "searchParameters": manifest.search_parameters,
        "recall": m.recall_at_k,
        "k": m.k,
        "queries": m.queries,
        "latencyP50Ms": m.latency_p50_ms,
        "latencyP99Ms": m.latency_p99_ms,
        "buildSeconds": manifest.timings.total_seconds,
        "passesGates": not gate_problems,
        "gateProblems": gate_problems,
    }
