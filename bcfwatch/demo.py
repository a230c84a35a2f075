"""`bcfwatch demo`: the main job on a real local broker, end to end."""

from __future__ import annotations

import tempfile
import time
from datetime import date
from pathlib import Path

from rich.console import Console

from bcfwatch.broker import KAFKA_VERSION, Broker
from bcfwatch.settings import Topics
from producers.generate import Drift, GeneratorSpec, generate_frame, write_log
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay

DEMO_DRIFTS = ("E08000025:+4%", "E09000012:+6%", "E10000016:creep+5%")


def run_demo(console: Console, port: int, scale: float, out_dir: Path | None, keep_running: bool) -> None:
    broker = Broker(port=port)
    started_broker = broker.pid() is None
    console.rule("[bold]bcfwatch demo")
    with console.status(f"starting Kafka {KAFKA_VERSION} on {broker.bootstrap}"):
        broker.start()
    console.print(f"Kafka {KAFKA_VERSION} is up at {broker.bootstrap}")
    try:
        work = out_dir or Path(tempfile.mkdtemp(prefix="bcfwatch-demo-"))
        work.mkdir(parents=True, exist_ok=True)
        log = work / "events.jsonl"
        spec = GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=scale, seed=2015,
                             drifts=[Drift.parse(d) for d in DEMO_DRIFTS], malformed_share=0.001)
        with console.status("generating two financial years (2014-15 baseline, 2015-16 plan year)"):
            lines = write_log(generate_frame(spec), log)
        console.print(f"generated {lines:,} events at scale {scale} into {log} (drifting: {', '.join(DEMO_DRIFTS)})")
        topics = Topics(f"demo{int(time.time())}")
        with console.status(f"replaying into Kafka topics {topics.prefix}.*"):
            report = replay(log, broker.bootstrap, topics, Pseudonymiser(load_key(dev=True)), 8)
        console.print(
            f"replayed {report.lines:,} lines in {report.seconds:.1f} s ({report.events_per_second:,.0f} events/s): "
            + ", ".join(f"{n:,} {t}" for t, n in report.produced.items())
            + f", {len(report.rejected):,} dead-lettered"
        )
    finally:
        if started_broker and not keep_running:
            broker.stop()
            console.print("Kafka stopped (use --keep-running to leave it up)")
