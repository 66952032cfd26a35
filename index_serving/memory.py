"""Memory headroom: refuse to load another index rather than be OOM-killed.

During a canary or a swap a replica holds two versions at once. If the second one does
not fit, the kernel kills the whole pod and the version that was serving goes with it.
So before downloading a version while another is loaded, the runtime compares the
manifest's size (times ``DEFAULT_HEADROOM_FACTOR``) with the memory available to this
container, refuses the version when it does not fit (reason ``memory``, retried with
backoff: memory may be freed later) and keeps serving the old one.

Available memory is read the way the kubelet sees it: the cgroup v2 (or v1) limit minus
the working set (usage minus inactive page cache, which the kernel reclaims before it
OOM-kills), or, outside a limited cgroup, ``MemAvailable`` from ``/proc/meminfo``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# A loaded index takes about its files' size; the margin covers FAISS search buffers,
# the ids array read into memory, and allocator slack. 0 disables the check.
DEFAULT_HEADROOM_FACTOR = 1.25
_UNLIMITED = 1 << 60  # cgroup v1 reports "no limit" as a number near 2**63


@dataclass(frozen=True)
class MemoryReading:
    available_bytes: int
    source: str  # "cgroup-v2" | "cgroup-v1" | "meminfo"

    def to_wire(self) -> dict[str, int | str]:
        return {"availableBytes": self.available_bytes, "source": self.source}


MemoryReader = Callable[[], "MemoryReading | None"]


def read_available_memory(cgroup_root: Path = Path("/sys/fs/cgroup"),
                          meminfo: Path = Path("/proc/meminfo")) -> MemoryReading | None:
    """Headroom under the container's memory limit, else the host's MemAvailable; None if unknown."""
    for reading in (_cgroup_v2(cgroup_root), _cgroup_v1(cgroup_root / "memory"), _meminfo(meminfo)):
        if reading is not None:
            return reading
    return None


def headroom_problem(needed_bytes: int, reading: MemoryReading | None,
                     factor: float = DEFAULT_HEADROOM_FACTOR) -> str | None:
    """Why a version of ``needed_bytes`` must not be loaded now, or None when it fits (or is unknown)."""
    if factor <= 0 or reading is None:
        return None
    required = int(needed_bytes * factor)
    if required <= reading.available_bytes:
        return None
    return (f"needs about {_mib(required)} ({_mib(needed_bytes)} of files x {factor}) but only "
            f"{_mib(reading.available_bytes)} is available ({reading.source}); keeping the loaded version(s)")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _cgroup_v2(root: Path) -> MemoryReading | None:
    limit = _read_int(root / "memory.max")
    current = _read_int(root / "memory.current")
    if limit is None or current is None or limit >= _UNLIMITED:
        return None
    inactive = _stat(root / "memory.stat", "inactive_file")
    return MemoryReading(max(0, limit - max(0, current - inactive)), "cgroup-v2")


def _cgroup_v1(root: Path) -> MemoryReading | None:
    limit = _read_int(root / "memory.limit_in_bytes")
    usage = _read_int(root / "memory.usage_in_bytes")
    if limit is None or usage is None or limit >= _UNLIMITED:
        return None
    inactive = _stat(root / "memory.stat", "total_inactive_file")
    return MemoryReading(max(0, limit - max(0, usage - inactive)), "cgroup-v1")


def _meminfo(path: Path) -> MemoryReading | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return MemoryReading(int(line.split()[1]) * 1024, "meminfo")  # the value is in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_int(path: Path) -> int | None:
    """An integer file; ``max`` (cgroup v2's "no limit") reads as unlimited."""
    try:
        raw = path.read_text().strip()
    except OSError:
        return None
    if raw == "max":
        return _UNLIMITED
    try:
        return int(raw)
    except ValueError:
        return None


def _stat(path: Path, name: str) -> int:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0
