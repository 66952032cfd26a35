"""Limits that keep hostile or broken clients from holding the server's memory.

* ``ByteBudget``: the sum of the declared sizes (Content-Length) of the request bodies
  being received or processed at once. A request that would exceed it is refused with
  503 *before* its body is read, so N half-sent large bodies hold at most the budget,
  never N times the body limit. Only the event loop touches it (no lock).
* ``trim_heap``: glibc keeps freed memory in its arenas; after a large request, a
  campaign of them leaves RSS at its high-water mark for good. ``malloc_trim(0)`` returns
  the free pages to the kernel. The server runs it off the event loop once
  ``TRIM_DELAY_SECONDS`` after a large request (one pending trim at a time, so a flood of
  large requests costs a few trims a second), and it is a no-op where glibc is not the
  allocator. ``fix_mmap_threshold`` keeps most large buffers out of the heap to begin with.
"""

from __future__ import annotations

import ctypes
import ctypes.util

TRIM_AFTER_BYTES = 1 << 20  # a request body at least this large schedules a trim
TRIM_DELAY_SECONDS = 0.3


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


M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20


def fix_mmap_threshold() -> bool:
    """Serve every allocation of 1 MiB or more with its own mmap, returned to the kernel on free.

    glibc raises its mmap threshold dynamically (up to 32 MiB) after large blocks are
    freed, after which request-sized buffers come from the heap and stay in RSS. A fixed
    threshold keeps big request bodies, answers and arrays out of the heap altogether.
    """
    if _LIBC is None:
        return False
    try:
        return bool(_LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except AttributeError:
        return False


def trim_heap() -> bool:
    """Give free heap pages back to the kernel; False where malloc_trim does not exist."""
    if _LIBC is None:
        return False
    _LIBC.malloc_trim(0)
    return True
