"""`bcfwatch worker` under tracemalloc, for the national-year row's memory attribution.

``python -m bench.traced_worker OUT.txt worker ARGS...`` runs the worker command as ``bcfwatch`` would, with
tracemalloc on (one frame per allocation). A sampling thread looks at the traced total every few seconds; whenever
it passes the largest seen by 5%, it takes a snapshot and writes, to ``OUT.txt``, the process's RSS at that moment,
the traced total, and the allocations grouped by source line, largest first. So the file always holds the
attribution at (about) the traced peak, even if the worker is killed. The worker runs slower under tracemalloc: its
time is not a figure, only its memory.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import tracemalloc
from pathlib import Path

SAMPLE_SECONDS = 5.0
GROWTH = 1.05  # a new snapshot when the traced total passes the last snapshot's by this much
TOP_LINES = 40


def rss_mib() -> float:
    match = re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def attribution(snapshot: tracemalloc.Snapshot, rss: float, traced: int) -> str:
    stats = snapshot.statistics("lineno")
    lines = [f"RSS {rss:,.0f} MiB; traced {traced / 2**20:,.0f} MiB in {sum(s.count for s in stats):,} blocks;"
             f" not traced (interpreter, libraries' own allocators, fragmentation) {rss - traced / 2**20:,.0f} MiB",
             "", f"{'MiB':>8} {'blocks':>12}  where"]
    for stat in stats[:TOP_LINES]:
        frame = stat.traceback[0]
        lines.append(f"{stat.size / 2**20:8.1f} {stat.count:12,}  {frame.filename}:{frame.lineno}")
    rest = stats[TOP_LINES:]
    lines.append(f"{sum(s.size for s in rest) / 2**20:8.1f} {sum(s.count for s in rest):12,}  "
                 f"the other {len(rest):,} lines")
    return "\n".join(lines) + "\n"


def sample(out: Path) -> None:
    largest = 0
    while True:
        time.sleep(SAMPLE_SECONDS)  # a sampling schedule, not synchronisation
        traced, _ = tracemalloc.get_traced_memory()
        if traced > largest * GROWTH:
            largest = traced
            rss = rss_mib()
            out.write_text(attribution(tracemalloc.take_snapshot(), rss, traced))


def main() -> None:
    out = Path(sys.argv[1])
    tracemalloc.start(1)
    threading.Thread(target=sample, args=(out,), daemon=True, name="tracemalloc-sampler").start()
    from bcfwatch.cli import main as bcfwatch

    sys.argv = ["bcfwatch", *sys.argv[2:]]
    bcfwatch()


if __name__ == "__main__":
    main()
