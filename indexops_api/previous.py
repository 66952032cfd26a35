"""The one rule for "the previous version": what ``pin --previous`` and Argo CD's pin-previous pin. Pure.

The previous version is the newest version that

* is older than the serving one (``status.currentVersion``; version ids sort by build
  time, so "older" is a string comparison), and nothing is previous while nothing serves;
* is not the candidate, nor the version ``spec.rollout.pinnedVersion`` already names (so
  pinning "previous" again goes one more version back);
* was never rejected: no build of it in ``status.lastBuild`` / ``status.history`` ended
  ``Failed``, ``ValidationFailed`` or ``RolledBack``;
* is known to be good. Argo CD sees only the object, so there the known-good versions are
  the ones status names as having passed: ``lastGoodVersion``, ``promotedVersion`` and every
  ``Succeeded`` build in ``lastBuild`` / ``history`` (``known_good``). ``faissctl`` also
  reads storage, so it passes the stored versions whose manifests pass the gates instead
  (``pool``): same rule, a wider view.

This module states the rule; ``deploy/argocd/.../actions/discovery.lua`` and
``pin-previous/action.lua`` mirror it in Lua, and ``tests/unit/test_previous_version.py``
feeds both the same fixtures (``tests/unit/fixtures/previous_version.json``).
"""

from __future__ import annotations

from collections.abc import Iterable

from indexops_api.status import BuildResult, FaissIndexStatus, LastBuild

REJECTED = (BuildResult.FAILED, BuildResult.VALIDATION_FAILED, BuildResult.ROLLED_BACK)


def _builds(status: FaissIndexStatus) -> list[LastBuild]:
    return list(status.history) + ([status.last_build] if status.last_build is not None else [])


def rejected_versions(status: FaissIndexStatus) -> set[str]:
    """Versions a build of which the operator recorded as failed, rejected by the gates or rolled back."""
    return {b.version for b in _builds(status) if b.result in REJECTED}


def known_good(status: FaissIndexStatus) -> set[str]:
    """The versions status names as having passed the gates (what Argo CD can know without storage)."""
    named = {status.last_good_version, status.promoted_version}
    named |= {b.version for b in _builds(status) if b.result == BuildResult.SUCCEEDED}
    return {v for v in named if v}


def excluded(status: FaissIndexStatus, pinned: str | None, version: str) -> str | None:
    """Why ``version`` cannot be the previous version whatever storage holds, or None."""
    current = status.current_version
    if not current:
        return "nothing serves yet, so there is no previous version"
    if version >= current:
        return f"not older than the serving version {current}"
    if version == status.candidate_version:
        return "it is the candidate"
    if version == pinned:
        return "spec.rollout.pinnedVersion names it already"
    if version in rejected_versions(status):
        return "rejected by the operator"
    return None


def previous_version(status: FaissIndexStatus, pinned: str | None, pool: Iterable[str] | None = None) -> str | None:
    """The newest version of ``pool`` (default: ``known_good(status)``) that the rule allows, or None."""
    versions = known_good(status) if pool is None else set(pool)
    return max((v for v in versions if v and excluded(status, pinned, v) is None), default=None)
