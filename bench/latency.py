"""Row 5 of `make bench`: alert latency at a live rate, from the event that settles a drifting week to
the signed webhook arriving.

A board's week is judged once it is settled: once the board's admission stream time, less the
lateness, has passed the week's end
(``monitors/alerting/timeline.last_settled_admission_days``). So the event that makes a
drifting board alert is the first admission of that board whose time reaches the week's end + lateness
+ 1 day. The benchmark replays the history before a drift window at full speed, waits for the worker,
the monitor and the notifier to settle, then produces the drift window at a fixed live rate, timing each
event as it is handed to the producer; every alert delivered in the window is matched with the event
that settled its week, and latency = webhook arrival - that event's produce time.

Only emergency-admission alerts are timed: their week is settled by the board's admissions, which is what the
trigger line above finds. The other plan metrics' alerts (settled by discharges, placements, or all three 92
days on) are raised and delivered in the same run, so the monitor and notifier do all their work, but an
admission is not what settles them.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import orjson

from bcfwatch.core.topics import Topics
from bcfwatch.demo.webhook_receiver import WebhookReceiver
from bcfwatch.demo.worker_process import WorkerProcess
from bcfwatch.infra.broker import Broker
from monitors.rules.drift import METRIC
from producers.generate import Drift, GeneratorSpec, generate_frame, write_log
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay
from producers.sample_plan import write_sample_plan
from streams.app import WorkerConfig
from streams.state_reader import wait_until_caught_up
from tests.support import free_port, read_topic, wait_for

PLAN_YEAR = date(2015, 4, 1)
LATENESS_DAYS = 14


@dataclass
class LatencySetup:
    scale: float = 0.02
    drifting_boards: int = 80
    drift: float = 0.40
    window_start: date = date(2015, 7, 1)  # history before, live window after
    window_end: date = date(2015, 10, 31)
    live_rate: float = 1_000.0  # events per second
    snapshot_seconds: float = 0.5
    monitor_interval: float = 0.25


@dataclass
class LatencyResult:
    latencies: list[float]
    live_events: int
    seconds: float
    setup: LatencySetup
    stages: dict[str, list[float]]  # per alert: seconds spent in each stage of the path
    slowest: list[tuple[float, str, tuple[float, ...]]] = field(default_factory=list)  # (latency, board, stages)

    def percentile(self, q: float, values: list[float] | None = None) -> float:
        values = self.latencies if values is None else values
        return float(np.percentile(values, q)) if values else float("nan")

    def breakdown(self) -> str:
        return ", ".join(f"{stage} p50 {self.percentile(50, values):.2f} s" for stage, values in self.stages.items())

    def tail(self, count: int = 3) -> str:
        """The slowest alerts, each with its stages (where the p99 goes)."""
        return "; ".join(f"{latency:.2f} s {board} (" + ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in
                                                                zip(self.stages, parts, strict=True)) + ")"
                         for latency, board, parts in sorted(self.slowest, reverse=True)[:count])


def _split_log(log: Path, window_start: date, history: Path, live: Path) -> None:
    """Lines before the window's first arrival go to history, the rest to live (log order kept)."""
    cut = window_start.isoformat()
    with open(log, "rb") as source, open(history, "wb") as before, open(live, "wb") as after:
        target = before
        for line in source:
            if target is before and b'"occurred_at":"' + cut.encode() in line:
                target = after
            target.write(line)


def _settling_lines(live: Path) -> dict[str, list[tuple[float, int]]]:
    """Per board, (new admission stream time, line number) each time a live line advances it."""
    clocks: dict[str, float] = {}
    advances: dict[str, list[tuple[float, int]]] = {}
    with open(live, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if row.get("type") != "admission":
                continue
            board = "E06000052" if row["board"] == "E06000053" else row["board"]
            moment = datetime.fromisoformat(row["occurred_at"]).timestamp()
            if moment > clocks.get(board, float("-inf")):
                clocks[board] = moment
                advances.setdefault(board, []).append((moment, number))
    return advances


def _settling_time(as_of: date) -> float:
    """The admission stream time at which the week ending ``as_of`` is settled."""
    return datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC).timestamp() + (LATENESS_DAYS + 1) * 86_400


def _trigger_line(advances: list[tuple[float, int]], as_of: date) -> int | None:
    """The live line whose admission first settles the week ending ``as_of``."""
    needed = _settling_time(as_of)
    for moment, number in advances:
        if moment >= needed:
            return number
    return None


def _clock_publications(broker: Broker, topics: Topics) -> dict[str, list[tuple[float, float]]]:
    """Per board, (publish time, admission stream time) of each clock the workers published."""
    published: dict[str, list[tuple[float, float]]] = {}
    for record in read_topic(broker.bootstrap, topics.board_days):
        board, _, rest = record.key.decode().partition("|")
        if rest == "clock|admission":
            published.setdefault(board, []).append((record.timestamp / 1000,
                                                    orjson.loads(record.value)["stream_time"]))
    return published


def _timed_alerts(delivered: list[tuple[dict, float]], advances: dict[str, list[tuple[float, int]]],
                  produced_at: dict[int, float], broker: Broker, topics: Topics
                  ) -> tuple[list[float], dict[str, list[float]], list[tuple[float, str, tuple[float, ...]]]]:
    """Each emergency-admission alert delivered in the window (payload, arrival) matched with the live line that
    settled its week: latencies, seconds per stage, and (latency, board, stages) for the tail."""
    clock_published = _clock_publications(broker, topics)
    alert_published = {orjson.loads(r.value)["event_id"]: r.timestamp / 1000
                       for r in read_topic(broker.bootstrap, topics.alerts)}
    latencies: list[float] = []
    stages: dict[str, list[float]] = {"worker to board_days": [], "monitor": [], "notifier to webhook": []}
    slowest: list[tuple[float, str, tuple[float, ...]]] = []
    for alert, arrived in delivered:
        if alert["metric"] != METRIC:
            continue  # not settled by an admission (see the module's docstring)
        as_of = date.fromisoformat(alert["as_of"])
        line = _trigger_line(advances.get(alert["board"], []), as_of)
        if line is None or line not in produced_at:
            continue
        latencies.append(arrived - produced_at[line])
        published = next((at for at, moment in clock_published.get(alert["board"], [])
                          if moment >= _settling_time(as_of)), None)
        if published is not None:
            stages["worker to board_days"].append(published - produced_at[line])
            stages["monitor"].append(alert_published[alert["event_id"]] - published)
            stages["notifier to webhook"].append(arrived - alert_published[alert["event_id"]])
            slowest.append((arrived - produced_at[line], alert["board"],
                            tuple(values[-1] for values in stages.values())))
    return latencies, stages, slowest


def _cli(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bcfwatch.cli", *args], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)


def alert_latency(broker: Broker, work: Path, partitions: int, setup: LatencySetup | None = None,
                  say=print) -> LatencyResult:
    setup = setup or LatencySetup()
    from bcfwatch.core.boards import load_boards

    boards = load_boards().codes
    drifting = [boards[i] for i in np.linspace(0, len(boards) - 1, setup.drifting_boards).astype(int)]
    spec = GeneratorSpec(date(2014, 4, 1), setup.window_end, scale=setup.scale, seed=11,
                         drifts=[Drift(b, setup.drift, setup.window_start) for b in drifting])
    log, history, live = work / "latency.jsonl", work / "latency-history.jsonl", work / "latency-live.jsonl"
    write_log(generate_frame(spec), log)
    _split_log(log, setup.window_start, history, live)
    advances = _settling_lines(live)
    plan = work / "latency-plan.csv"
    write_sample_plan(plan, scale=setup.scale)

    topics = Topics(f"latency{int(time.time())}")
    config = WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=topics.prefix, partitions=partitions,
                          datadir=work / "latency-worker", web_port=free_port(), metrics_port=None,
                          snapshot_seconds=setup.snapshot_seconds)
    pseudonymiser = Pseudonymiser(load_key(dev=True))
    say(f"latency: replaying the history ({history.stat().st_size / 1e6:,.0f} MB) at full speed")
    replay(history, broker.bootstrap, topics, pseudonymiser, partitions)
    worker = WorkerProcess(config, work / "latency-worker.log").start()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    receiver = WebhookReceiver(secret, free_port()).start()
    subscriptions = work / "latency-subscriptions.toml"
    subscriptions.write_text(f'[[subscriber]]\nname = "bench"\nboards = "all"\nquestions = "all"\n'
                             f'channel = "webhook"\n'
                             f'url = "{receiver.url}"\nsecret_env = "BCFWATCH_BENCH_HOOK_SECRET"\n')
    os.environ["BCFWATCH_BENCH_HOOK_SECRET"] = secret
    common = ["--topic-prefix", topics.prefix, "--bootstrap", broker.bootstrap]
    monitor = notifier = None
    try:
        wait_until_caught_up(config, 1800)
        monitor = _cli("monitor", "--plan", str(plan), "--interval", str(setup.monitor_interval), "--metrics-port",
                       "0", *common, log=work / "latency-monitor.log")
        notifier = _cli("notify", "--subscriptions", str(subscriptions), *common, log=work / "latency-notify.log")
        quiet_since = [time.monotonic(), 0]

        def history_delivered() -> bool:  # no new delivery for 5 s: the history's alerts are all out
            if len(receiver.accepted) != quiet_since[1]:
                quiet_since[:] = [time.monotonic(), len(receiver.accepted)]
            return time.monotonic() - quiet_since[0] > 5 and monitor.poll() is None
        wait_for(history_delivered, 300, "the history's alerts to be delivered")
        before = len(receiver.accepted)
        say(f"latency: {before} alert(s) from the history delivered; producing the window at "
            f"{setup.live_rate:,.0f} events/s")
        produced_at: dict[int, float] = {}  # wall clock, to compare with Kafka record timestamps
        started = time.monotonic()
        report = replay(live, broker.bootstrap, topics, pseudonymiser, partitions, events_per_second=setup.live_rate,
                        on_produced=lambda number: produced_at.__setitem__(number, time.time()))
        seconds = time.monotonic() - started
        wait_until_caught_up(config, 600)
        quiet_since[:] = [time.monotonic(), len(receiver.accepted)]
        wait_for(history_delivered, 120, "the window's alerts to be delivered")
        delivered = [(alert, arrived) for (_, alert), arrived in
                     zip(receiver.accepted[before:], receiver.arrived_at[before:], strict=True)]
        latencies, stages, slowest = _timed_alerts(delivered, advances, produced_at, broker, topics)
        return LatencyResult(latencies, report.lines, seconds, setup, stages, slowest)
    finally:
        for process in (monitor, notifier):
            if process is not None:
                process.terminate()
                process.wait(30)
        worker.stop()
        receiver.stop()


if __name__ == "__main__":
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/bcfwatch-latency")
    work.mkdir(parents=True, exist_ok=True)
    broker = Broker(port=free_port(), controller_port=free_port())
    broker.start(fresh=True)
    try:
        result = alert_latency(broker, work, 8)
        print(f"{len(result.latencies)} alerts, p50 {result.percentile(50):.2f} s, p99 {result.percentile(99):.2f} s,"
              f" live {result.live_events:,} events in {result.seconds:.0f} s")
        print(result.breakdown())
        print("slowest:", result.tail())
        print(sorted(round(x, 2) for x in result.latencies))
    finally:
        broker.stop()
