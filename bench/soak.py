"""Soak: the whole live path for a set time with faults on a schedule (a benchmark script, not a pass/fail test).

A broker of its own, `bcfwatch replay` at a live rate, one worker, the monitor and the notifier delivering to a
local signed-webhook receiver, each a real process under a small supervisor that restarts whatever dies (as
systemd's Restart=always would). Faults, in turn every ``--fault-every`` seconds: SIGKILL of the worker, the
monitor, the notifier or the replay (restarted with ``--resume``), a broker stop and start, and poison messages
on the event topics and on the monitor's and notifier's input topics. At the end, once the worker has caught up
and deliveries are quiet, it reports events lost or doubled (the worker's counts against the pandas oracle),
alert events on the topic and deliveries against the offline backtest's alert timeline, duplicate deliveries,
unexpected exits, and the memory (RSS) of every process over time; then writes bench/SOAK.md.

    .venv/bin/python -m bench.soak --minutes 3            # proves it works
    .venv/bin/python -m bench.soak --minutes 20 --rate 1000
    .venv/bin/python -m bench.soak --cluster --minutes 5  # a three-broker cluster (bcfwatch kafka start --brokers 3)

``--cluster`` runs the same on a local three-broker KRaft cluster (every topic three copies, two in sync for a
write), and the broker faults become: SIGKILL one broker (in turn) and start it again after 10 s, and a clean
stop and start of one broker; after each the next fault waits until every replica is in sync again.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from kafka import KafkaProducer

from bcfwatch.core.boards import load_boards
from bcfwatch.core.plans import load_plan
from bcfwatch.core.topics import Topics
from bcfwatch.demo.webhook_receiver import WebhookReceiver
from bcfwatch.infra.broker import Broker
from bcfwatch.infra.cluster import Cluster
from monitors.analysis.backtest import backtest
from producers.generate import Drift, GeneratorSpec, generate_frame, write_log
from producers.sample_plan import write_sample_plan
from streams.app import WorkerConfig
from streams.daily_table import from_state
from streams.oracle import oracle_counts
from streams.state_reader import day_counts, wait_until_caught_up
from tests.support import free_cluster_port, free_port, read_topic, wait_for

PLAN_YEAR = date(2015, 4, 1)
LATENESS_DAYS = 14
PARTITIONS = 8
LINES_PER_SCALE_YEAR = 11_700_000  # generated lines a year at scale 1.0 (measured)
LOG_START, LOG_END = date(2014, 4, 1), date(2015, 12, 31)


def rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


@dataclass
class Service:
    """One bcfwatch command as a child process, restarted by the supervisor when it dies."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    restarts_after_fault: int = 0
    unexpected_exits: list[int] = field(default_factory=list)
    expected_exit: bool = False  # a one-shot command (the replay) that may finish
    exited_at: float | None = None  # when it exited on its own, until the supervisor restarts it

    def start(self, *extra: str) -> None:
        with open(self.log, "ab") as handle:
            self.process = subprocess.Popen([sys.executable, "-m", "bcfwatch.cli", *self.argv, *extra],
                                            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=self.env)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


class Supervisor(threading.Thread):
    """Restarts a service that exited on its own (counting it), every second; samples RSS every ``sample`` s."""

    def __init__(self, services: list[Service], brokers: list[Broker], started: float, sample: float) -> None:
        super().__init__(daemon=True)
        self.services, self.brokers, self.started, self.sample = services, brokers, started, sample
        self.rss: list[dict[str, float | None]] = []
        self.halt = threading.Event()
        self.lock = threading.Lock()  # held while a fault kills and restarts a service

    def run(self) -> None:
        next_sample = time.monotonic()
        while not self.halt.wait(1.0):
            with self.lock:
                for service in self.services:
                    process = service.process
                    if process is None or process.poll() is None:
                        continue
                    if service.expected_exit and process.returncode == 0:
                        continue
                    if service.exited_at is None:  # restart 2 s after an exit, as RestartSec=2 would
                        service.exited_at = time.monotonic()
                        service.unexpected_exits.append(process.returncode)
                    if time.monotonic() - service.exited_at < 2:
                        continue
                    service.exited_at = None
                    service.start(*(["--resume"] if service.name == "replay" else []))
            if time.monotonic() >= next_sample:
                next_sample += self.sample
                row: dict[str, float | None] = {"seconds": time.monotonic() - self.started}
                row.update({s.name: rss_mib(s.pid) for s in self.services})
                row["broker"] = sum(rss_mib(broker.pid()) or 0.0 for broker in self.brokers) or None
                self.rss.append(row)


@dataclass
class Fault:
    at: float  # seconds since the live replay started
    what: str
    outcome: str


POISON_EVENTS = [b'{"type": "admission", "age": 7', b"\xff\xfe not utf-8",
                 orjson.dumps({"type": "discharge", "board": "E09000012", "nhs_number": "9434765919"}),
                 orjson.dumps({"type": "transfer", "event_id": "poison", "board": "E08000025"})]


def poison(bootstrap: str, topics: Topics, control: bool) -> str:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        if control:
            producer.send(topics.board_days, key=b"E08000025|not-a-date", value=b"{not json")
            producer.send(topics.board_days, key=b"E08000025|clock|admission", value=b'{"stream_time": "soon"}')
            producer.send(topics.alerts, key=b"E08000025", value=b'{"state": "raised"}')
            producer.send(topics.alerts, key=b"E08000025", value=b"\x00garbage")
            sent = f"4 on {topics.board_days} and {topics.alerts}"
        else:
            for event_type in ("admission", "discharge", "care_home_placement"):
                for value in POISON_EVENTS:
                    producer.send(topics.event(event_type), key=b"E08000025", value=value)
            sent = f"{3 * len(POISON_EVENTS)} on the event topics"
        producer.flush(30)
    finally:
        producer.close(5)
    return sent


def make_log(work: Path, rate: float, minutes: float) -> tuple[Path, float, list[str]]:
    """A generated log of about rate x minutes lines, with drifting boards so the plan year alerts."""
    years = ((LOG_END - LOG_START).days + 1) / 365
    scale = max(0.002, rate * minutes * 60 / (LINES_PER_SCALE_YEAR * years))
    codes = load_boards().codes
    drifting = [codes[i] for i in np.linspace(0, len(codes) - 1, 12).astype(int)]
    spec = GeneratorSpec(LOG_START, LOG_END, scale=scale, seed=2024, late_share=0.05, duplicate_share=0.01,
                         malformed_share=0.002, drifts=[Drift(b, 0.35, PLAN_YEAR) for b in drifting])
    log = work / "soak.jsonl"
    write_log(generate_frame(spec), log)
    return log, scale, drifting


def compare_counts(live: pd.DataFrame, oracle: pd.DataFrame) -> tuple[int, int, int]:
    """(counted events lost, counted events doubled, board-days that differ), over every count column."""
    keys = ["board", "date"]
    merged = oracle.merge(live, on=keys, how="outer", suffixes=("_oracle", "_live")).fillna(0)
    columns = [c for c in oracle.columns if c not in keys]
    diff = pd.DataFrame({c: merged[f"{c}_live"] - merged[f"{c}_oracle"] for c in columns})
    return int(-diff[diff < 0].sum().sum()), int(diff[diff > 0].sum().sum()), int((diff != 0).any(axis=1).sum())


class Kafka:
    """The soak's Kafka: one broker, or a three-broker cluster; its broker faults."""

    def __init__(self, cluster: bool) -> None:
        self.cluster = Cluster(port=free_cluster_port(3), brokers=3) if cluster else None
        self.single = None if cluster else Broker(port=free_port(), controller_port=free_port())
        self.turn = 0

    @property
    def nodes(self) -> list[Broker]:
        return self.cluster.nodes if self.cluster is not None else [self.single]  # type: ignore[list-item]

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap if self.cluster is not None else self.nodes[0].bootstrap

    def start(self) -> None:
        if self.cluster is not None:
            self.cluster.start(fresh=True)
        else:
            self.nodes[0].start(fresh=True)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
            shutil.rmtree(node.home, ignore_errors=True)

    def restart(self) -> str:
        """One node stopped cleanly and started again after 10 s (the only one, without a cluster)."""
        down = time.monotonic()
        if self.cluster is None:
            self.nodes[0].stop()
            time.sleep(10)  # the outage itself (a fault's length, not synchronisation)
            self.nodes[0].start()
            return f"stopped (SIGTERM) and started again: down {time.monotonic() - down:.0f} s"
        number = self._next()
        self.cluster.stop_node(number)
        time.sleep(10)  # the outage itself
        self.cluster.start_node(number)
        self.cluster.wait_in_sync(300)
        return f"broker {number} stopped (SIGTERM), started again after 10 s, in sync {time.monotonic() - down:.0f} s"

    def kill(self) -> str:
        """One broker of the cluster killed (SIGKILL) and started again after 10 s."""
        assert self.cluster is not None
        number = self._next()
        down = time.monotonic()
        node = self.cluster.node(number)
        pid = node.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            node.pid_file.unlink(missing_ok=True)
        time.sleep(10)  # the outage itself
        self.cluster.start_node(number)
        self.cluster.wait_in_sync(300)
        return f"broker {number} killed (SIGKILL), started again after 10 s, in sync {time.monotonic() - down:.0f} s"

    def _next(self) -> int:
        self.turn += 1
        return (self.turn - 1) % 3 + 1


def soak(minutes: float, rate: float, fault_every: float, work: Path, say: Callable[[str], None] = print,
         cluster: bool = False) -> str:
    work.mkdir(parents=True, exist_ok=True)
    say("generating the log, the oracle counts and the expected alerts")
    log, scale, drifting = make_log(work, rate, minutes)
    lines = sum(1 for _ in open(log, "rb"))
    speed = lines / (minutes * 60)
    plan = work / "plan.csv"
    write_sample_plan(plan, scale=scale)
    oracle = oracle_counts(log, LATENESS_DAYS * 86_400)
    expected_alerts = backtest(log, load_plan(plan), PLAN_YEAR, LATENESS_DAYS).alerts
    expected_ids = {a.event_id for a in expected_alerts}

    broker = Kafka(cluster)
    broker.start()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    receiver = WebhookReceiver(secret, free_port()).start()
    subscriptions = work / "subscriptions.toml"
    subscriptions.write_text(f'[[subscriber]]\nname = "soak"\nboards = "all"\nquestions = "all"\n'
                             f'channel = "webhook"\n'
                             f'url = "{receiver.url}"\nsecret_env = "BCFWATCH_SOAK_HOOK_SECRET"\n')
    env = {**os.environ, "BCFWATCH_SOAK_HOOK_SECRET": secret, "XDG_CACHE_HOME": str(work / "cache"),
           "BCFWATCH_PSEUDONYM_KEY": secrets.token_hex(32)}
    topics = Topics(f"soak{int(time.time())}")
    common = ["--topic-prefix", topics.prefix, "--bootstrap", broker.bootstrap]
    config = WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=topics.prefix, partitions=PARTITIONS,
                          datadir=work / "worker", web_port=free_port(), snapshot_seconds=0.5)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    worker = Service("worker", ["worker", *common, "--partitions", str(PARTITIONS), "--web-port",
                                str(config.web_port), "--datadir", str(config.datadir), "--metrics-port", "0",
                                "--snapshot-seconds", "0.5"], logs / "worker.log", env)
    monitor = Service("monitor", ["monitor", "--plan", str(plan), "--interval", "1", "--metrics-port", "0",
                                  *common], logs / "monitor.log", env)
    notifier = Service("notifier", ["notify", "--subscriptions", str(subscriptions), "--metrics-port", "0",
                                    *common], logs / "notifier.log", env)
    replay = Service("replay", ["replay", str(log), "--speed", f"{speed:.0f}", "--partitions", str(PARTITIONS),
                                "--delivery-timeout", "300", *common], logs / "replay.log", env, expected_exit=True)
    services = [worker, monitor, notifier, replay]
    faults: list[Fault] = []
    started = time.monotonic()
    supervisor = Supervisor(services, broker.nodes, started, sample=max(5.0, minutes * 60 / 12))
    try:
        from streams.app import ensure_worker_topics

        ensure_worker_topics(config)
        for service in (worker, monitor, notifier):
            service.start()
        replay.start()
        supervisor.start()
        say(f"soak: {lines:,} lines at {speed:,.0f} events/s for {minutes:g} min, a fault every {fault_every:g} s")

        def kill(service: Service) -> Callable[[], str]:
            def fault() -> str:
                with supervisor.lock:
                    if service.pid is None:
                        return "not running (finished)"
                    service.kill()
                    service.restarts_after_fault += 1
                    service.start(*(["--resume"] if service.name == "replay" else []))
                return "killed (SIGKILL) and restarted"
            return fault

        schedule = [("poison messages on the event topics", lambda: poison(broker.bootstrap, topics, False)),
                    ("SIGKILL worker", kill(worker)),
                    ("SIGKILL monitor", kill(monitor)),
                    ("poison messages on board_days and alerts", lambda: poison(broker.bootstrap, topics, True)),
                    ("broker stop and start", broker.restart),
                    ("SIGKILL notifier", kill(notifier)),
                    ("SIGKILL replay, restart with --resume", kill(replay))]
        if cluster:
            schedule[1:1] = [("SIGKILL a broker, start it again", broker.kill)]
            schedule[5:5] = [("SIGKILL a broker, start it again", broker.kill)]
        end = started + minutes * 60
        next_fault, turn = started + fault_every, 0
        while time.monotonic() < end or replay.process.poll() is None:
            now = time.monotonic()
            if now >= next_fault and now < end:
                what, fault = schedule[turn % len(schedule)]
                try:
                    outcome = fault()
                except Exception as error:  # a soak reports whatever a fault does
                    outcome = f"fault failed: {error!r}"
                faults.append(Fault(now - started, what, outcome))
                say(f"  {now - started:6.0f} s  {what}: {outcome}")
                turn += 1
                next_fault = now + fault_every
            if now > end + 900:
                raise TimeoutError("the replay did not finish within 15 minutes of the soak's end")
            time.sleep(0.5)  # the schedule's tick
        live_seconds = time.monotonic() - started
        say("replay finished; waiting for the worker to catch up and deliveries to go quiet")
        snapshots = wait_until_caught_up(config, 900)
        quiet = [time.monotonic(), -1]

        def delivered_and_quiet() -> bool:
            if len(receiver.accepted) != quiet[1]:
                quiet[:] = [time.monotonic(), len(receiver.accepted)]
            return time.monotonic() - quiet[0] > 15
        wait_for(delivered_and_quiet, 600, "deliveries to go quiet")
        supervisor.halt.set()
        supervisor.join(5)

        lost, doubled, days_off = compare_counts(from_state(day_counts(snapshots)), oracle)
        on_topic = []
        for record in read_topic(broker.bootstrap, topics.alerts):
            try:
                alert = orjson.loads(record.value)
            except orjson.JSONDecodeError:
                continue
            if isinstance(alert, dict) and "event_id" in alert:
                on_topic.append(alert["event_id"])
        delivered = Counter(alert.get("event_id") for _, alert in receiver.accepted)
        webhook_ids = Counter(webhook_id for webhook_id, _ in receiver.accepted)
        results = {
            "lines in the log": f"{lines:,}",
            "counted events in the oracle": f"{int(oracle.drop(columns=['board', 'date']).sum().sum()):,}",
            "events lost (oracle - live, summed over every count)": f"{lost:,}",
            "events doubled (live - oracle)": f"{doubled:,}",
            "board-days that differ from the oracle": f"{days_off:,}",
            "alert events expected (offline backtest)": f"{len(expected_ids):,}",
            "alert events on the topic (distinct)": f"{len(set(on_topic)):,}",
            "alert events missing from the topic": f"{len(expected_ids - set(on_topic)):,}",
            "alert events on the topic not expected": f"{len(set(on_topic) - expected_ids):,}",
            "alert events written twice to the topic": f"{sum(1 for n in Counter(on_topic).values() if n > 1):,}",
            "alerts delivered (distinct)": f"{len(delivered):,}",
            "expected alerts not delivered": f"{len(expected_ids - set(delivered)):,}",
            "deliveries of unexpected alerts": f"{len(set(delivered) - expected_ids):,}",
            "duplicate deliveries (same webhook-id again)": f"{sum(n - 1 for n in webhook_ids.values()):,}",
            "webhooks refused for a bad signature": f"{receiver.bad_signatures:,}",
            **{f"unexpected exits of the {s.name} (exit codes)": (", ".join(map(str, s.unexpected_exits)) or "none")
               for s in services},
            "outage warnings from the replay": str(sum("unreachable for" in line
                                                       for line in replay.log.read_text().splitlines())),
        }
        return report(minutes, rate, speed, fault_every, scale, drifting, live_seconds, faults, results,
                      supervisor.rss, [s.name for s in services], cluster)
    finally:
        supervisor.halt.set()
        for service in services:
            service.stop()
        receiver.stop()
        broker.stop()


def report(minutes: float, rate: float, speed: float, fault_every: float, scale: float, drifting: list[str],
           live_seconds: float, faults: list[Fault], results: dict[str, str], rss: list[dict], names: list[str],
           cluster: bool = False) -> str:
    kafka = ("a three-broker KRaft cluster of its own (every topic three copies, two in sync for a write)" if cluster
             else "a broker of its own")
    command = f"python -m bench.soak{' --cluster' if cluster else ''} --minutes {minutes:g} --rate {rate:g} " \
              f"--fault-every {fault_every:g}"
    lines = [
        "# Soak: the live path under faults",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command}` on {os.cpu_count()} cores: a generated log "
        f"({LOG_START} to {LOG_END}, scale {scale:.4f}, 5% late, 1% duplicated, 0.2% malformed, "
        f"{len(drifting)} boards drifting +35% from {PLAN_YEAR}) replayed at {speed:,.0f} events/s into {kafka}, "
        f"one worker (snapshots every 0.5 s), the monitor (every 1 s) and the notifier delivering to a "
        f"local signed-webhook receiver. The live phase took {live_seconds:.0f} s. A supervisor restarts any process "
        "that exits on its own (counted below as an unexpected exit).",
        "",
        "## Faults",
        "",
        "| at (s) | fault | outcome |",
        "|---:|---|---|",
        *[f"| {f.at:.0f} | {f.what} | {f.outcome} |" for f in faults],
        "",
        "## Results",
        "",
        "| what | value |",
        "|---|---:|",
        *[f"| {what} | {value} |" for what, value in results.items()],
        "",
        "## Memory (RSS, MiB)",
        "",
        "| at (s) | " + " | ".join([*names, "broker"]) + " |",
        "|---:|" + "---:|" * (len(names) + 1),
        *["| " + " | ".join([f"{row['seconds']:.0f}", *[f"{row[n]:.0f}" if row.get(n) is not None else "-"
                                                       for n in [*names, "broker"]]]) + " |" for row in rss],
        "",
        "`-`: not running at that moment (restarting, or the replay finished). "
        + ("The broker column sums the three JVMs (-Xmx512m each)." if cluster else "The broker is a JVM with -Xmx1g."),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the live replay (default 3)")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second (sizes the log; default 1000)")
    parser.add_argument("--fault-every", type=float, default=20.0, help="seconds between faults (default 20)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bcfwatch-soak"), help="working folder")
    parser.add_argument("--cluster", action="store_true", help="a three-broker cluster, with broker kills")
    parser.add_argument("--out", type=Path, default=None, help="report file (default bench/SOAK.md, or "
                        "bench/SOAK-cluster.md with --cluster)")
    args = parser.parse_args()
    args.out = args.out or Path(__file__).with_name("SOAK-cluster.md" if args.cluster else "SOAK.md")
    markdown = soak(args.minutes, args.rate, args.fault_every, args.work, cluster=args.cluster)
    args.out.write_text(markdown)
    print(markdown)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
