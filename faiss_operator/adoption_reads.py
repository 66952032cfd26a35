"""Observe for adoption: the few manifests a lost status is rebuilt from (``adoption``).

Bounded: only on a pass whose status is empty, and at most ``MAX_MANIFESTS`` reads: the
pointer's stable and candidate versions and the newest versions whose id carries the
current build key's prefix (version ids end with ``key[:8]``, so the listing already
says which versions may be builds of the current spec without reading every manifest).
A missing or invalid manifest is simply not adoptable.
"""

from __future__ import annotations

from indexops_api.manifest import Manifest
from indexops_api.pointer import ServingPointer
from faiss_operator.artifacts import Artifacts
from faiss_operator.model import StoredVersion

MAX_MANIFESTS = 4
KEYED_CANDIDATES = 2  # newest versions of the current build key read (a key prefix may collide)


def versions_to_read(pointer: ServingPointer | None, versions: dict[str, StoredVersion], key: str) -> list[str]:
    wanted: list[str] = []
    if pointer is not None:
        wanted += [v for v in (pointer.stable_version, pointer.candidate_version) if v]
    keyed = sorted((v for v, s in versions.items() if s.complete and v.endswith(f"-{key[:8]}")), reverse=True)
    wanted += keyed[:KEYED_CANDIDATES]
    unique = list(dict.fromkeys(v for v in wanted if versions.get(v) is not None and versions[v].complete))
    return unique[:MAX_MANIFESTS]


def read_adoptable(at: Artifacts, pointer: ServingPointer | None, versions: dict[str, StoredVersion], key: str) -> dict[str, Manifest]:
    found: dict[str, Manifest] = {}
    for version in versions_to_read(pointer, versions, key):
        manifest, _ = at.manifest(version)
        if manifest is not None:
            found[version] = manifest
    return found
