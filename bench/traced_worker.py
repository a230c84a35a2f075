"""`bcfwatch worker` under tracemalloc, for the national-year row's memory attribution.

``python -m bench.traced_worker OUT.txt worker ARGS...`` runs the worker command as ``bcfwatch`` would, with
tracemalloc on (one frame per allocation). A sampling thread looks at the traced total every few seconds; whenever
it passes the largest seen by 5%, it takes a snapshot and writes, to ``OUT.txt``, the process's RSS at that moment,
the traced total, and the allocations grouped by source line, largest first. So the file always holds the
attribution at (about) the traced peak, even if the worker is killed. The worker runs slower under tracemalloc: its
time is not a figure, only its memory.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from bcfwatch.infra.memory import malloc_info

SAMPLE_SECONDS = 5.0
GROWTH = 1.05  # a new snapshot when the traced total passes the last snapshot's by this much
TOP_LINES = 40


def status_mib(field: str = "VmRSS", pid: int | str = "self") -> float:
    """A memory figure of /proc/PID/status (``VmRSS``: now, ``VmHWM``: the peak), in MiB."""
    match = re.search(rf"{field}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def malloc_lines() -> list[str]:
    """Where the RSS sits outside Python's objects: glibc's heap (in use, and freed but kept) and its mmapped
    blocks; pymalloc's arenas (blocks in use, and free blocks inside arenas kept by a live one)."""
    lines = []
    info = malloc_info()
    if info is None:
        lines.append("glibc malloc: mallinfo2 not available")
    else:
        lines.append(f"glibc malloc: heap {info.arena / 2**20:,.0f} MiB (in use {info.uordblks / 2**20:,.0f}, "
                     f"freed but kept {info.fordblks / 2**20:,.0f}); mmapped blocks {info.hblkhd / 2**20:,.0f} MiB "
                     f"in {info.hblks:,}")
    handle, path = tempfile.mkstemp()
    saved = os.dup(2)
    try:  # _debugmallocstats writes to the C stderr (a worker's log line in this instant goes there too)
        os.dup2(handle, 2)
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(handle)
    stats = Path(path).read_text()
    os.unlink(path)

    def figure(label: str) -> int:
        match = re.search(rf"{re.escape(label)}\s*=\s*([\d,]+)", stats)
        return int(match.group(1).replace(",", "")) if match else 0

    arena_bytes = re.search(r"arenas \* ([\d,]+) bytes/arena", stats)
    arenas = figure("# arenas allocated current") * (int(arena_bytes.group(1).replace(",", "")) if arena_bytes else 0)
    lines.append(f"pymalloc: arenas {arenas / 2**20:,.0f} MiB (blocks in use "
                 f"{figure('# bytes in allocated blocks') / 2**20:,.0f}, free blocks kept "
                 f"{figure('# bytes in available blocks') / 2**20:,.0f}); tracemalloc's own "
                 f"{tracemalloc.get_tracemalloc_memory() / 2**20:,.0f} MiB")
    return lines


def attribution(snapshot: tracemalloc.Snapshot, rss: float, traced: int) -> str:
    stats = snapshot.statistics("lineno")
    lines = [f"RSS {rss:,.0f} MiB; traced {traced / 2**20:,.0f} MiB in {sum(s.count for s in stats):,} blocks;"
             f" not traced (interpreter, libraries' own allocators, fragmentation) {rss - traced / 2**20:,.0f} MiB",
             *malloc_lines(), "", f"{'MiB':>8} {'blocks':>12}  where"]
    for stat in stats[:TOP_LINES]:
        frame = stat.traceback[0]
        lines.append(f"{stat.size / 2**20:8.1f} {stat.count:12,}  {frame.filename}:{frame.lineno}")
    rest = stats[TOP_LINES:]
    lines.append(f"{sum(s.size for s in rest) / 2**20:8.1f} {sum(s.count for s in rest):12,}  "
                 f"the other {len(rest):,} lines")
    return "\n".join(lines) + "\n"


def write_atomically(out: Path, text: str) -> None:
    """A killed worker leaves the last whole attribution, never half of one."""
    part = out.with_name(out.name + ".part")
    part.write_text(text)
    os.replace(part, out)


def sample(out: Path) -> None:
    largest = 0
    while True:
        time.sleep(SAMPLE_SECONDS)  # a sampling schedule, not synchronisation
        traced, _ = tracemalloc.get_traced_memory()
        if traced > largest * GROWTH:
            largest = traced
            rss = status_mib()
            write_atomically(out, attribution(tracemalloc.take_snapshot(), rss, traced))


def sample_allocators(out: Path) -> None:
    """Untraced: at each new high of the RSS (by 2%), where it sits by allocator (tracemalloc hides pymalloc's
    figures, so this is a run of its own)."""
    largest = 0.0
    while True:
        time.sleep(SAMPLE_SECONDS)  # a sampling schedule, not synchronisation
        rss = status_mib()
        if rss > largest * 1.02:
            largest = rss
            write_atomically(out, "\n".join([f"RSS {rss:,.0f} MiB", *malloc_lines()]) + "\n")


def main() -> None:
    """``OUT.txt worker ARGS``: traced by source line; ``--allocators OUT.txt worker ARGS``: by allocator."""
    by_allocator = sys.argv[1] == "--allocators"
    arguments = sys.argv[2:] if by_allocator else sys.argv[1:]
    out = Path(arguments[0])
    if not by_allocator:
        tracemalloc.start(1)
    threading.Thread(target=sample_allocators if by_allocator else sample, args=(out,), daemon=True,
                     name="memory-sampler").start()
    from bcfwatch.cli import main as bcfwatch

    sys.argv = ["bcfwatch", *arguments[1:]]
    bcfwatch()


if __name__ == "__main__":
    main()
