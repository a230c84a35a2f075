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

And one request of CPython's cycle collector (:func:`collect_cycles_less_often`, :func:`freeze_start_up_objects`):
counting a packed record makes and drops thousands of small containers (each event's decoded dict and facts),
and by default a young collection runs every 700 of them, a full one (traversing the whole live state, hundreds
of MiB by the end of a national year) every 100 young ones: 10% of the counting's time at a quarter of a
national year, measured in-process; a national year went 1.09x faster with it (bench/RESULTS.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import time
from collections.abc import Callable
from functools import lru_cache

M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, from glibc's malloc.h
LARGE_BLOCK_BYTES = 128 * 1024  # glibc's own starting threshold
YOUNG_COLLECTION_ALLOCATIONS = 50_000  # containers allocated between two young collections (CPython: 700)
OLDER_COLLECTION_EVERY = 20  # collections of the generation below between two of the next (CPython: 10)
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


def collect_cycles_less_often() -> tuple[int, int, int]:
    """Run CPython's cycle collector less often (the thresholds above); returns the thresholds it had. The
    worker's counting makes no reference cycles (its garbage is freed by reference counting as it goes): what a
    collection would find is a few cycles of Faust's and aiokafka's, so they wait a little longer."""
    before = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, OLDER_COLLECTION_EVERY, OLDER_COLLECTION_EVERY)
    return before


def freeze_start_up_objects() -> int:
    """Collect once, then move every object alive now (modules, the app, its settings) out of the collector's
    sight for good, so that full collections traverse only what was made since; returns how many were frozen.
    (A frozen object still goes when its last reference does; only a cycle of frozen objects that becomes
    garbage later is never collected: start-up's objects live as long as the worker.)"""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
