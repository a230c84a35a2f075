"""`make bench`: throughput and memory on the real local broker, side by side with the limits.

Rows (each on the same N events, P partitions):
1. consumer limit: Kafka's own ConsumerPerformance tool reading the three event topics;
2. Python limit: a bare aiokafka consumer decoding each event (orjson) and counting per board in a dict;
3. the product: `bcfwatch worker`(s) from empty state to the last event reflected in the durable snapshots;
4. replay: producer throughput from the log file to Kafka (kafka-python, acks=all, idempotent);
5. alert latency at a live rate (bench/latency.py): event that settles a drifting week -> signed webhook;
6. memory: the worker's peak RSS while holding 151 boards x two years of days;
7. packed records (docs/wire-format.md): `replay --packed` and the worker(s) on packed input, each with its
   ratio to the single-event row (``--only packed`` runs just the replay and product rows, both ways);
8. the Quix Streams peer (bench/quix_peer.py, own venv) on the same single-event topics; every row's rate is
   also given as a ratio to it;
9. a national year end to end: a generated year at scale 1.0 (about 12M events) from log file to settled
   per-board counts (`replay --packed` and the workers running together), with the workers' peak RSS
   (``--national-scale`` sets the scale, ``--national-workers`` the workers (1), ``--national-packers`` the
   replay's packing processes (1: it shares the 2 cores with the worker); ``--skip-national`` leaves it out).
Writes bench/RESULTS.md and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table

from bcfwatch.core.topics import Topics
from bcfwatch.demo.worker_process import WorkerProcess
from bcfwatch.infra.broker import KAFKA_VERSION, Broker
from bcfwatch.infra.kafka import ensure_topics, topic_partitions
from bench.latency import LatencyResult, alert_latency
from bench.spy import Profile, profile
from bench.traced_worker import status_mib
from producers.generate import GeneratorSpec, generate_frame, write_log
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay
from streams.app import WorkerConfig
from streams.state_reader import snapshot_reader, tail_records, wait_until_caught_up
from tests.support import free_port, wait_for

EVENTS_AT_SCALE_1_TWO_YEARS = 24_400_000
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def consumer_limit(broker: Broker, topics: Topics, produced: dict[str, int]) -> float:
    """Seconds for Kafka's ConsumerPerformance to read every event topic (fetch time, summed over the three)."""
    classpath = os.pathsep.join(str(p) for p in sorted(broker.libs.glob("*.jar")))
    total = 0.0
    for event_type, count in produced.items():
        output = subprocess.run(
            ["java", "-cp", classpath, "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server",
             broker.bootstrap, "--topic", topics.event(event_type), "--messages", str(count), "--timeout", "60000",
             "--reporting-interval", "100000000"], capture_output=True, text=True, check=True).stdout
        row = output.strip().splitlines()[-1].split(",")
        # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms,
        # fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
        total += float(row[7]) / 1000
    return total


async def python_limit(broker: Broker, topics: Topics, events: int) -> float:
    consumer = AIOKafkaConsumer(*topics.events, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                                group_id=f"bench-python-{time.time()}", enable_auto_commit=False)
    await consumer.start()
    counts: dict[str, int] = {}
    seen = 0
    started = None
    try:
        while seen < events:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if started is None and batch:
                started = time.monotonic()
            for messages in batch.values():
                for message in messages:
                    board = orjson.loads(message.value)["board"]
                    counts[board] = counts.get(board, 0) + 1
                    seen += 1
    finally:
        await consumer.stop()
    return time.monotonic() - started


def faust_floor(broker: Broker, topics: Topics, partitions: int, events: int, work: Path, take: int = 0) -> float:
    """Seconds for an empty Faust agent (count and acknowledge) to reach the N-th event, start-up included;
    ``take`` > 0 consumes in ``stream.take`` batches of that size."""
    out = work / f"faust-floor-{take}.txt"
    started = time.time()  # the wall clock, as the moment the floor writes (and as the product's rows)
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.faust_floor", "--bootstrap", broker.bootstrap, "--topics",
         ",".join(topics.events), "--partitions", str(partitions), "--events", str(events), "--datadir",
         str(work / f"faust-floor-{take}"), "--web-port", str(free_port()), "--out", str(out), "--take", str(take)],
        stdout=subprocess.DEVNULL, stderr=open(work / "faust-floor.log", "w"))
    try:
        wait_for(lambda: out.exists() and out.read_text().strip() != "", 7200, "the empty Faust agent to finish")
        return float(out.read_text()) - started
    finally:
        process.terminate()
        process.wait(60)


QUIX_VENV = Path(os.environ.get("BCFWATCH_QUIX_VENV", Path(__file__).resolve().parent / ".quix-venv"))


def quix_python() -> Path:
    """The Python of the Quix Streams peer's own venv (made on first use; never the project's .venv)."""
    python = QUIX_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "quixstreams==3.28.1"], check=True)
    return python


def quix_peer(broker: Broker, topics: Topics, events: int, work: Path) -> float:
    """Seconds for the Quix Streams peer (bench/quix_peer.py) to count the N-th event, start-up included: from
    before its process starts (interpreter and imports included, as for the product's workers; until 2026-12-07
    the peer's clock started after its imports, ~0.3-0.5 s later)."""
    out = work / "quix-peer.txt"
    python = quix_python()  # (made on first use: before the clock starts)
    started = time.time()  # the wall clock, as the moment the peer writes (and as the product's rows)
    process = subprocess.Popen(
        [str(python), str(Path(__file__).resolve().parent / "quix_peer.py"), "--bootstrap", broker.bootstrap,
         "--topics", ",".join(topics.events), "--events", str(events), "--state-dir", str(work / "quix-state"),
         "--out", str(out)], stdout=subprocess.DEVNULL, stderr=open(work / "quix-peer.log", "w"))
    try:
        wait_for(lambda: out.exists() and out.read_text().strip() != "", 7200, "the Quix Streams peer to finish")
        return float(out.read_text()) - started
    finally:
        process.terminate()
        process.wait(60)


class Rows(dict):
    """The measured rows, each printed as it is measured (a later failure on a loaded machine keeps them)."""

    def __setitem__(self, what: str, row: tuple[int, float, str]) -> None:
        super().__setitem__(what, row)
        count, seconds, notes = row
        print(f"{what}: {count:,} events in {seconds:.1f} s = {count / seconds:,.0f} events/s; {notes}", flush=True)


def peak_rss_mib(pid: int) -> float:
    return status_mib("VmHWM", pid)


def worker_processes(broker: Broker, topics: Topics, partitions: int, workers: int,
                     work: Path, trace_memory: Path | None = None, by_allocator: bool = False
                     ) -> list[WorkerProcess]:
    """``workers`` worker processes (not started yet) on ``topics``, each with its own data folder and log;
    with ``trace_memory``, each under ``bench/traced_worker.py``, its memory's attribution in
    ``trace_memory``-N.txt (by source line under tracemalloc, or ``by_allocator``, untraced)."""
    return [WorkerProcess(WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=topics.prefix,
                                       partitions=partitions, datadir=work / f"{topics.prefix}-{i}",
                                       web_port=free_port(), metrics_port=free_port()),
                          work / f"{topics.prefix}-{i}.log",
                          *([] if trace_memory is None else
                            [("-m", "bench.traced_worker", *(["--allocators"] if by_allocator else []),
                              f"{trace_memory}-{i}.txt")]))
            for i in range(workers)]


def last_snapshot_written(config: WorkerConfig) -> float:
    """When the newest durable snapshot of any partition was written (seconds since the epoch: its record's
    timestamp, which the worker's producer sets). Read once the snapshots cover every event, it is when they
    did: the bench polls every few seconds (reading the snapshots costs the workers CPU), and timing a row by
    the poll that saw it would add up to a poll's period to it. (The timestamp is set when the worker hands the
    snapshot to its producer, a few ms before the broker has it.)"""
    consumer = snapshot_reader(config, "bcfwatch-bench-snapshot-times")
    try:
        ends = consumer.end_offsets(topic_partitions(consumer, config.state_topic))
        written = [record.timestamp / 1000 for tp, end in ends.items() for record in tail_records(consumer, tp, end, 0)]
        if not written:
            raise RuntimeError(f"no snapshot on {config.state_topic}: nothing to time")
        return max(written)
    finally:
        consumer.close()


def product(broker: Broker, topics: Topics, partitions: int, workers: int, work: Path) -> tuple[float, list[float]]:
    processes = worker_processes(broker, topics, partitions, workers, work)

    def still_running(_behind: int) -> None:
        for process in processes:
            if not process.alive():
                raise RuntimeError(f"a worker exited (exit code {process.process.returncode}): see {process.log}")

    started = time.time()  # the wall clock, as the snapshots' timestamps
    try:
        for process in processes:
            process.start()
        # Reading every snapshot costs CPU the workers need: look every 5 s; the time is the snapshots' own.
        wait_until_caught_up(processes[0].config, 7200, on_progress=still_running, poll_seconds=5.0)
        elapsed = last_snapshot_written(processes[0].config) - started
        rss = [peak_rss_mib(p.process.pid) for p in processes]
    finally:
        for process in processes:
            process.stop()
    return elapsed, rss


def national_year(broker: Broker, scale: float, partitions: int, workers: int, work: Path,
                  pseudonymiser: Pseudonymiser, profiles: list[Profile],
                  profile_seconds: float = 60.0, trace_memory: Path | None = None,
                  by_allocator: bool = False, packers: int | None = None) -> tuple[int, float, str]:
    """A financial year at ``scale`` from log file to settled per-board counts: `replay --packed` and the
    workers run together, timed from the replay's start until the snapshots cover every event. Meanwhile
    py-spy samples the replay (this process) and the first worker for ``profile_seconds`` each (0: not).
    ``trace_memory``: run the workers under tracemalloc, for the attribution of their memory (not for time)."""
    log = work / "national.jsonl"
    write_log(generate_frame(GeneratorSpec(date(2015, 4, 1), date(2016, 3, 31), seed=12, scale=scale)), log)
    topics = Topics(f"national{int(time.time())}")
    ensure_topics(broker.bootstrap, [*topics.events, topics.dead_letter, topics.late_events], partitions)
    processes = worker_processes(broker, topics, partitions, workers, work, trace_memory, by_allocator)
    samplers: list[threading.Thread] = []

    def sample(pid: int, what: str) -> None:
        time.sleep(30)  # a sampling schedule: past start-up and the group join, into the steady state
        profiles.append(profile(pid, profile_seconds, what))

    started = time.time()  # the wall clock, as the snapshots' timestamps
    try:
        for process in processes:
            process.start()
        if profile_seconds > 0:
            samplers = [threading.Thread(target=sample, args=(os.getpid(), "replay --packed (this process)")),
                        threading.Thread(target=sample, args=(processes[0].process.pid, "worker, packed input"))]
            for sampler in samplers:
                sampler.start()
        report = replay(log, broker.bootstrap, topics, pseudonymiser, partitions, packed=True,
                        processes=packers or None)
        replayed = time.time() - started
        wait_until_caught_up(processes[0].config, 7200, poll_seconds=5.0)
        elapsed = last_snapshot_written(processes[0].config) - started
        for sampler in samplers:
            sampler.join()
        rss = [peak_rss_mib(p.process.pid) for p in processes]
    finally:
        for process in processes:
            process.stop()
    log.unlink()
    return report.lines, elapsed, (f"scale {scale}, {workers} worker(s); replay done after {replayed:.0f} s; "
                                   "peak RSS " + ", ".join(f"{r:,.0f} MiB" for r in rss))


def national_only(broker: Broker, work: Path, args: argparse.Namespace, console: Console) -> None:
    """``--only national``: the national-year row and its profiles, printed (RESULTS.md untouched)."""
    profiles: list[Profile] = []
    row = national_year(broker, args.national_scale, args.partitions, args.national_workers, work,
                        Pseudonymiser(load_key(dev=True)), profiles, args.profile_seconds, args.trace_memory,
                        args.memory_by == "allocator", args.national_packers)
    print(f"national year end to end: {row[0]:,} events in {row[1]:.1f} s = {row[0] / row[1]:,.0f} events/s; "
          f"{row[2]}", flush=True)
    for sampled in profiles:
        console.print(sampled.table())


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value
    return parse


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--port", type=int, default=29092)
    parser.add_argument("--skip-latency", action="store_true", help="Leave out row 5 (about 5 minutes).")
    parser.add_argument("--workers", default="1,2", help="Worker counts of the product rows (default 1,2).")
    parser.add_argument("--skip-quix", action="store_true", help="Leave out the Quix Streams peer row.")
    parser.add_argument("--national-scale", type=float, default=1.0,
                        help="Scale of the national-year row (1.0: England, about 12M events).")
    parser.add_argument("--skip-national", action="store_true", help="Leave out the national-year row.")
    parser.add_argument("--national-workers", type=at_least(1), default=1,
                        help="Workers of the national-year row (default 1).")
    parser.add_argument("--national-packers", type=at_least(0), default=1,
                        help="The national replay's packing processes (`replay --packers`; default 1: the replay "
                             "and the worker share the machine, and a second packer starves the worker; 0: one "
                             "per core, the replay's own default).")
    parser.add_argument("--profile-seconds", type=float, default=60.0,
                        help="py-spy samples the replay and a worker this long during the national year (0: not).")
    parser.add_argument("--trace-memory", type=Path, default=None, metavar="PREFIX",
                        help="With --only national: run the worker under tracemalloc and write the attribution of "
                             "its memory at the traced peak to PREFIX-0.txt (its time is then not a figure).")
    parser.add_argument("--memory-by", choices=("line", "allocator"), default="line",
                        help="With --trace-memory: by source line (tracemalloc), or by allocator (glibc's heap and "
                             "pymalloc's arenas at each new RSS high; untraced).")
    parser.add_argument("--only", choices=("all", "packed", "national"), default="all",
                        help="'packed': only the replay and product rows, single-event and packed (row 7); "
                             "'national': only the national-year row and its profiles (printed, RESULTS.md untouched).")
    args = parser.parse_args()
    if args.trace_memory is not None and args.only != "national":
        parser.error("--trace-memory goes with --only national (the memory of the national-year row)")
    if args.memory_by != "line" and args.trace_memory is None:
        parser.error("--memory-by goes with --trace-memory PREFIX (where the attribution is written)")
    return args


def main() -> None:
    args = arguments()
    only_packed = args.only == "packed"
    console = Console(width=None if sys.stdout.isatty() else 200)
    broker = Broker(port=args.port)
    broker.start(fresh=True)
    work = Path(tempfile.mkdtemp(prefix="bcfwatch-bench-"))
    rows: list[tuple[str, int, str, float, str]] = []
    profiles: list[Profile] = []
    try:
        if args.only == "national":
            national_only(broker, work, args, console)
            return
        log = work / "events.jsonl"
        spec = GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), seed=7,
                             scale=args.events / EVENTS_AT_SCALE_1_TWO_YEARS)
        write_log(generate_frame(spec), log)
        pseudonymiser = Pseudonymiser(load_key(dev=True))
        results: dict[str, tuple[int, float, str]] = Rows()
        for workers in sorted(int(w) for w in args.workers.split(",")):
            topics = Topics(f"bench{int(time.time())}w{workers}")
            report = replay(log, broker.bootstrap, topics, pseudonymiser, args.partitions)
            n = report.lines
            first = workers == min(int(w) for w in args.workers.split(","))
            if first and only_packed:
                results["replay (kafka-python producer)"] = (n, report.seconds, "")
            elif first:
                results["replay (kafka-python producer)"] = (n, report.seconds, "")
                results["consumer limit (ConsumerPerformance)"] = (n, consumer_limit(broker, topics, report.produced),
                                                                  "")
                results["Python limit (bare aiokafka + orjson)"] = (n, asyncio.run(python_limit(broker, topics, n)),
                                                                   "")
                results["Faust floor (empty agent: count + ack)"] = (
                    n, faust_floor(broker, topics, args.partitions, sum(report.produced.values()), work),
                    "start-up and group join included, as for the product")
                results["Faust floor, stream.take(1000) batches"] = (
                    n, faust_floor(broker, topics, args.partitions, sum(report.produced.values()), work, take=1000),
                    "the same, consuming in batches")
            if first and not args.skip_quix:
                results["Quix Streams peer (dedupe + board/day counters)"] = (
                    n, quix_peer(broker, topics, sum(report.produced.values()), work),
                    "own venv; no lateness/held/91-day rules; start-up included, to the N-th event")
            seconds, rss = product(broker, topics, args.partitions, workers, work)
            results[f"product: {workers} worker(s)"] = (n, seconds, "peak RSS " + ", ".join(f"{r:,.0f} MiB"
                                                                                           for r in rss))
            packed_topics = Topics(f"bench{int(time.time())}p{workers}")
            packed = replay(log, broker.bootstrap, packed_topics, pseudonymiser, args.partitions, packed=True)
            if first:
                results["replay --packed"] = (n, packed.seconds, (
                    f"{packed.packed_records:,} records; {report.seconds / packed.seconds:.2f}x the replay row"))
            packed_seconds, rss = product(broker, packed_topics, args.partitions, workers, work)
            quix = results.get("Quix Streams peer (dedupe + board/day counters)")
            versus_quix = f", {quix[1] / packed_seconds:.2f}x the Quix peer" if quix else ""
            results[f"product, packed input: {workers} worker(s)"] = (n, packed_seconds, (
                f"{seconds / packed_seconds:.2f}x the single-event row{versus_quix}; peak RSS "
                + ", ".join(f"{r:,.0f} MiB" for r in rss)))
        if only_packed:
            table = Table(title=f"bcfwatch bench (packed rows): N={n:,} events, {args.partitions} partitions")
            for column in ("what", "events", "seconds", "events/s", "notes"):
                table.add_column(column, justify="left" if column in ("what", "notes") else "right")
            for what, (count, seconds, notes) in results.items():
                table.add_row(what, f"{count:,}", f"{seconds:.1f}", f"{count / seconds:,.0f}", notes)
            console.print(table)
            return
        if not args.skip_national:
            workers, packers = args.national_workers, args.national_packers
            results[f"national year end to end (replay --packed --packers {packers or '0 (one per core)'} + {workers} "
                    f"worker{'s' if workers > 1 else ''})"] = national_year(
                broker, args.national_scale, args.partitions, workers, work, pseudonymiser, profiles,
                args.profile_seconds, packers=packers)
        python_rate = results["Python limit (bare aiokafka + orjson)"][0] / \
            results["Python limit (bare aiokafka + orjson)"][1]
        consumer_rate = results["consumer limit (ConsumerPerformance)"][0] / \
            results["consumer limit (ConsumerPerformance)"][1]
        quix = results.get("Quix Streams peer (dedupe + board/day counters)")
        quix_rate = quix[0] / quix[1] if quix else float("nan")
        table = Table(title=f"bcfwatch bench: N={n:,} events, {args.partitions} partitions, Kafka {KAFKA_VERSION}")
        for column in ("what", "events", "seconds", "events/s", "vs Quix peer", "vs Python limit", "vs consumer limit",
                       "notes"):
            table.add_column(column, justify="left" if column in ("what", "notes") else "right")
        for what, (count, seconds, notes) in results.items():
            rate = count / seconds
            rows.append((what, count, f"{seconds:.1f}", rate, notes))
            table.add_row(what, f"{count:,}", f"{seconds:.1f}", f"{rate:,.0f}", f"{rate / quix_rate:.2f}",
                          f"{rate / python_rate:.2f}",
                          f"{rate / consumer_rate:.3f}", notes)
        console.print(table)
        latency = None
        if not args.skip_latency:
            latency = alert_latency(broker, work, args.partitions, say=console.print)
            console.print(latency_summary(latency))
        for sampled in profiles:
            console.print(sampled.table())
        write_results(rows, quix_rate, python_rate, consumer_rate, args, latency, profiles)
    finally:
        broker.stop()


def latency_summary(latency: LatencyResult) -> str:
    setup = latency.setup
    return (f"alert latency over {len(latency.latencies)} alerts: p50 {latency.percentile(50):.2f} s, "
            f"p99 {latency.percentile(99):.2f} s, max {max(latency.latencies, default=float('nan')):.2f} s "
            f"({latency.breakdown()}); live window {latency.live_events:,} events at {setup.live_rate:,.0f} "
            f"events/s, {setup.drifting_boards} boards drifting +{setup.drift:.0%} from {setup.window_start}, "
            f"scale {setup.scale}, worker snapshots every {setup.snapshot_seconds} s, monitor every "
            f"{setup.monitor_interval} s; slowest: {latency.tail()}")


def write_results(rows, quix_rate: float, python_rate: float, consumer_rate: float, args,
                  latency: LatencyResult | None, profiles: list[Profile]) -> None:
    lines = [
        "# bcfwatch benchmark results", "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Python "
        f"{platform.python_version()}, Kafka {KAFKA_VERSION} (local KRaft, one node). Command: "
        f"`make bench` (`python -m bench.bench --events {args.events} --partitions {args.partitions}`).", "",
        "| what | events | seconds | events/s | vs Quix peer | vs Python limit | vs consumer limit | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for what, count, seconds, rate, notes in rows:
        lines.append(f"| {what} | {count:,} | {seconds} | {rate:,.0f} | {rate / quix_rate:.2f} | "
                     f"{rate / python_rate:.2f} | "
                     f"{rate / consumer_rate:.3f} | {notes} |")
    lines += ["", "The product rows run from an empty state to the last event reflected in the durable "
              "snapshots (what `bcfwatch counts export` reads), including worker start-up and the group join: "
              "checked every 5 s, timed to the moment the last of those snapshots was written (its record's "
              "timestamp), so the poll's period is not in the figure. The Faust floor rows run an agent that does "
              "nothing but count, on the same topics, timed from process start to its N-th event.", ""]
    if latency is not None:
        lines += ["## Alert latency at a live rate (row 5)", "", latency_summary(latency) + ".", "",
                  "Latency = signed webhook arrival at a local receiver - the moment the event that settles the "
                  "alerted week (the board's first admission at or past the week's end + lateness + 1 day) was "
                  "handed to the producer. Path: replay producer -> worker (snapshot + `board_days`) -> "
                  "`bcfwatch monitor` -> alerts topic -> `bcfwatch notify` -> webhook (see bench/latency.py)."]
    if profiles:
        lines += ["", "## Where the time goes (py-spy, during the national year)", ""]
        for sampled in profiles:
            lines += [sampled.table(), ""]
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
