"""Limits that keep hostile or broken clients from holding the server's memory.

* ``ByteBudget``: the sum of the declared sizes (Content-Length) of the request bodies
  being received or processed at once. A request that would exceed it is refused with
  503 *before* its body is read, so N half-sent large bodies hold at most the budget,
  never N times the body limit. Only the event loop touches it (no lock).
* ``trim_heap``: glibc keeps freed memory in its arenas; after a large request, a
  campaign of them leaves RSS at its high-water mark for good. ``malloc_trim(0)`` returns
  the free pages to the kernel. It is called at most once per ``TRIM_INTERVAL_SECONDS``,
  off the event loop, and is a no-op where glibc is not the allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

TRIM_AFTER_BYTES = 1 << 20  # a request body at least this large schedules a trim
TRIM_INTERVAL_SECONDS = 1.0


class ByteBudget:
    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self.refused = 0

    def try_take(self, size: int) -> bool:
        if self.used + size > self.limit:
            self.refused += 1
            return False
        self.used += size
        return True

    def give_back(self, size: int) -> None:
        self.used = max(0, self.used - size)


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()
_lock = threading.Lock()
_last_trim = [float("-inf")]


def trim_due(now: float | None = None) -> bool:
    """True (and claims the slot) when a trim may run now."""
    now = time.monotonic() if now is None else now
    with _lock:
        if now - _last_trim[0] < TRIM_INTERVAL_SECONDS:
            return False
        _last_trim[0] = now
        return True


def trim_heap() -> bool:
    """Give free heap pages back to the kernel; False where malloc_trim does not exist."""
    if _LIBC is None:
        return False
    _LIBC.malloc_trim(0)
    return True
