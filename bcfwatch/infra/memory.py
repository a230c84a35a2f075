"""What a long-running worker asks of the C allocator (glibc), so that memory it frees leaves its RSS.

Measured on a national year (bench/RESULTS.md, issue 25): at a worker RSS of 1,558 MiB, glibc's heap held
942 MiB of which 666 MiB were freed by the program but kept, and pymalloc's arenas 549 MiB of which 247 MiB were
free blocks. Two causes on glibc's side, one fix each:

* glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which large blocks (a
  packed record's value is up to 256 KB, a fetch response more) come from the heap, and once freed their pages
  stay in the process: :func:`keep_large_blocks_mapped` fixes the threshold at 128 KiB, so such blocks are
  mapped and unmapped on their own;
* freed heap memory is returned to the system only from the heap's top: :func:`hand_back_freed_memory`
  (``malloc_trim(0)``) releases the free pages inside it too, and the worker calls it between snapshots.

Elsewhere (musl, macOS) both are no-ops that say so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from collections.abc import Callable
from functools import lru_cache

M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, from glibc's malloc.h
LARGE_BLOCK_BYTES = 128 * 1024  # glibc's own starting threshold
HAND_BACK_SECONDS = 10.0  # a trim takes ~5 ms, ~80 ms when it frees most of a GiB heap (measured here)


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc 2.33 on), summed over every malloc arena."""

    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    """glibc, if this is it (``mallopt`` and ``malloc_trim``; ``mallinfo2`` only from glibc 2.33)."""
    for find in (lambda: "libc.so.6", lambda: ctypes.util.find_library("c")):  # the second runs a subprocess
        try:
            libc = ctypes.CDLL(find())
        except (OSError, TypeError):
            continue
        if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
            if hasattr(libc, "mallinfo2"):
                libc.mallinfo2.restype = MallInfo2
            return libc
    return None


def keep_large_blocks_mapped() -> bool:
    """Fix glibc's mmap threshold, unless the operator set it (``MALLOC_MMAP_THRESHOLD_`` or ``GLIBC_TUNABLES``'s
    ``glibc.malloc.mmap_threshold``); whether it was set."""
    libc = _glibc()
    if (libc is None or "MALLOC_MMAP_THRESHOLD_" in os.environ
            or "glibc.malloc.mmap_threshold" in os.environ.get("GLIBC_TUNABLES", "")):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES))


def hand_back_freed_memory() -> bool:
    """Return the free pages of glibc's heap to the system; whether any were."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def malloc_info() -> MallInfo2 | None:
    """glibc's figures of its heap and mapped blocks (None elsewhere, and before glibc 2.33)."""
    libc = _glibc()
    return libc.mallinfo2() if libc is not None and hasattr(libc, "mallinfo2") else None


class FreedMemoryReturn:
    """:func:`hand_back_freed_memory` at most every ``every_seconds``, asked as often as the caller likes (the
    worker asks at each snapshot tick)."""

    def __init__(self, every_seconds: float = HAND_BACK_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every_seconds = every_seconds
        self.clock = clock
        self.last = clock()

    def tick(self) -> bool:
        """Hand back freed memory if it is time; whether it was handed back."""
        now = self.clock()
        if now - self.last < self.every_seconds:
            return False
        self.last = now
        return hand_back_freed_memory()
