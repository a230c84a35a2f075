"""Replay-to-table throughput of the worker(s) and their peak RSS, on the real local broker.

    .venv/bin/python bench/stream_throughput.py --events 1000000 --workers 1 --workers 2

The log is generated, replayed once into topics per run (timed: producer
throughput), then the workers start on full topics and the clock runs until the
durable snapshots cover every event (time to the last event in the exported
counts). Peak RSS is VmHWM of each worker process.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

from bcfwatch.broker import Broker
from bcfwatch.settings import Topics
from bcfwatch.worker_process import WorkerProcess
from producers.generate import GeneratorSpec, generate_frame, write_log
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay
from streams.app import WorkerConfig
from streams.state_reader import wait_until_caught_up

EVENTS_AT_SCALE_1 = 24_400_000  # two financial years


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, action="append")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--port", type=int, default=9092)
    args = parser.parse_args()
    broker = Broker(port=args.port)
    broker.start()
    work = Path(tempfile.mkdtemp(prefix="bcfwatch-bench-"))
    log = work / "events.jsonl"
    spec = GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=args.events / EVENTS_AT_SCALE_1, seed=7)
    started = time.monotonic()
    lines = write_log(generate_frame(spec), log)
    print(f"generated {lines:,} events in {time.monotonic() - started:.1f} s")
    pseudonymiser = Pseudonymiser(load_key(dev=True))
    for workers in args.workers or [1]:
        prefix = f"bench{int(time.time())}w{workers}"
        report = replay(log, broker.bootstrap, Topics(prefix), pseudonymiser, args.partitions)
        print(f"replay: {report.lines:,} events in {report.seconds:.1f} s = {report.events_per_second:,.0f} events/s")
        processes = [WorkerProcess(WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=prefix,
                                                partitions=args.partitions, datadir=work / f"{prefix}-{i}",
                                                web_port=16200 + i), work / f"{prefix}-{i}.log")
                     for i in range(workers)]
        started = time.monotonic()
        for process in processes:
            process.start()
        wait_until_caught_up(processes[0].config, 3600)
        elapsed = time.monotonic() - started
        rss = [peak_rss_mib(p.process.pid) for p in processes]
        for process in processes:
            process.stop()
        print(f"{workers} worker(s): {report.lines:,} events to table in {elapsed:.1f} s = "
              f"{report.lines / elapsed:,.0f} events/s (incl. start-up); peak RSS "
              + ", ".join(f"{r:,.0f} MiB" for r in rss))


if __name__ == "__main__":
    main()
