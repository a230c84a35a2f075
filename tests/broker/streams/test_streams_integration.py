"""The worker on the real broker: its exported counts equal the pandas oracle exactly.

One generated log (two financial years, >200,000 events, 5% out of order, 1%
duplicated, 0.5% malformed) is replayed three times: into one worker, into one
worker killed with SIGKILL twice mid-stream, and into two workers sharing the
partitions.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import orjson
import pandas as pd
import pytest
from kafka import KafkaProducer

from bcfwatch.core.boards import load_boards
from bcfwatch.core.plans import load_plan
from bcfwatch.core.topics import Topics
from bcfwatch.demo.worker_process import WorkerProcess
from monitors.alerting.alerts import AlertState
from monitors.alerting.metric_timeline import tables_from_counts
from monitors.alerting.timeline import alert_timeline, daily_emergency_admissions
from monitors.alerting.topic_schemas import parse_alert
from monitors.analysis.backtest import backtest, settled_from_events, timeline_key
from monitors.service.board_days import BoardDays
from monitors.service.monitor import Monitor
from producers.eventlog.reader import read_events
from producers.generate import Drift, GeneratorSpec
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay
from producers.sample_plan import write_sample_plan
from streams.app import WorkerConfig
from streams.daily_table import from_state
from streams.oracle import oracle_counts
from streams.state_reader import day_counts, latest_snapshots, wait_until_caught_up
from tests.support import free_port, read_topic, wait_for

pytestmark = pytest.mark.kafka
PARTITIONS = 8
PLAN_YEAR = date(2015, 4, 1)
LATENESS = 14 * 86_400
CATCH_UP_SECONDS = 600
SCALE = 0.0085
TYPO_PREFIX = "typed-wrong-year-"
DRIFT = "E08000025:+20%"  # Birmingham, big enough to be told from noise at this small scale


@pytest.fixture(scope="module")
def event_log(generated_log) -> Path:
    log = generated_log(GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=SCALE, seed=20,
                                      drifts=[Drift.parse(DRIFT)], late_share=0.05, duplicate_share=0.01,
                                      malformed_share=0.005))
    # Mistyped dates (issue 11): years typed 2025 and 2023 near the top for Birmingham's admissions and a
    # discharge, and one typed 2012 (before the earliest date: rejected).
    lines = log.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 200_000
    typos = []
    for n, (kind, year) in enumerate([("admission", 2025), ("admission", 2023), ("discharge", 2025),
                                      ("admission", 2012)]):
        row = next(orjson.loads(line) for line in lines[500:]
                   if b'"E08000025"' in line and f'"{kind}"'.encode() in line and b"nhs_number" in line)
        row["event_id"] = f"{TYPO_PREFIX}{n}"
        row["occurred_at"] = str(year) + row["occurred_at"][4:]
        typos.append(orjson.dumps(row) + b"\n")
    log.write_bytes(b"".join([*lines[:300], typos[0], *lines[300:600], *typos[1:], *lines[600:]]))
    return log


@pytest.fixture(scope="module")
def oracle(event_log) -> pd.DataFrame:
    return oracle_counts(event_log, LATENESS)


def _config(broker, prefix: str, tmp_path: Path, port: int) -> WorkerConfig:
    return WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=prefix, partitions=PARTITIONS,
                        datadir=tmp_path / f"worker-{port}", web_port=port)


def _replay(broker, event_log: Path, prefix: str):
    return replay(event_log, broker.bootstrap, Topics(prefix), Pseudonymiser(load_key()), PARTITIONS)


def _assert_equal_to_oracle(config: WorkerConfig, oracle: pd.DataFrame) -> pd.DataFrame:
    snapshots = wait_until_caught_up(config, CATCH_UP_SECONDS)
    live = from_state(day_counts(snapshots))
    pd.testing.assert_frame_equal(live.reset_index(drop=True), oracle.reset_index(drop=True))
    # The board_days topic the monitor follows holds the same counts and clocks as the snapshots.
    published = BoardDays(config.bootstrap, config.topics.board_days)
    try:
        published.refresh()
    finally:
        published.close()
    pd.testing.assert_frame_equal(from_state(published.day_counts).reset_index(drop=True),
                                  oracle.reset_index(drop=True))
    pd.testing.assert_frame_equal(published.daily_emergency_admissions(), daily_emergency_admissions(oracle))
    offline_tables = tables_from_counts(oracle)
    assert published.tables().keys() == offline_tables.keys()
    for name, table in published.tables().items():
        pd.testing.assert_frame_equal(table, offline_tables[name], obj=name)
    clocks = {key: seconds for snapshot in snapshots.values() for key, seconds in snapshot["stream_times"].items()
              if not key.endswith("|settled")}
    assert published.stream_times == clocks
    return live


@pytest.mark.timeout(1200)  # a safety net: the test replays the whole log twice
def test_one_worker_equals_oracle(broker, event_log, oracle, topic_prefix, tmp_path):
    config = _config(broker, topic_prefix, tmp_path, free_port())
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        report = _replay(broker, event_log, topic_prefix)
        # A message that breaks the contract written straight to a topic: dead-lettered, the worker goes on.
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        producer.send(config.topics.event("admission"), key=b"E09000012", value=b'{"type": "admission", "age": 7')
        producer.send(config.topics.event("discharge"), key=b"E09000012",
                      value=orjson.dumps({"type": "discharge", "board": "E09000012", "nhs_number": "9434765919"}))
        producer.close()
        live = _assert_equal_to_oracle(config, oracle)
        assert live["emergency_admissions"].sum() > 90_000 and live["late_events"].sum() > 0
        assert live["at_home_91d"].sum() > 0 and live["delayed_days_social_care"].sum() > 0

        dead = [orjson.loads(r.value) for r in read_topic(broker.bootstrap, config.topics.dead_letter)]
        worker_dead = [d for d in dead if d["source"] == "worker"]
        assert len(dead) - len(worker_dead) == len(report.rejected) > 0
        assert sorted(d["offset"] >= 0 and d["reason"] != "" for d in worker_dead) == [True, True]
        assert all("9434765919" not in d["raw"] for d in worker_dead)
        late = read_topic(broker.bootstrap, config.topics.late_events)
        assert len(late) == live["late_events"].sum()
        # The mistyped years are held (visible on their topic), the one before the earliest date rejected.
        held = [orjson.loads(r.value) for r in read_topic(broker.bootstrap, config.topics.held_events)]
        assert sorted(h["event_id"] for h in held if h["event_id"].startswith(TYPO_PREFIX)) == [
            f"{TYPO_PREFIX}{n}" for n in range(3)]
        assert any(f"{TYPO_PREFIX}3" in d["raw"] and "earliest" in d["reason"] for d in dead)

        # The web view serves every window for a board, actual and a year earlier.
        metrics = orjson.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{config.web_port}/boards/E08000025/metrics", timeout=10).read())
        ytd = metrics["windows"]["financial_year_to_date"]
        birmingham = live[(live["board"] == "E08000025") & (live["date"] >= ytd["from"]) & (live["date"] <= ytd["to"])]
        assert ytd["actual"]["emergency_admissions"] == birmingham["emergency_admissions"].sum()
        assert set(metrics["windows"]) == {"day", "rolling_28_days", "month_to_date", "quarter_to_date",
                                           "financial_year_to_date"}
        assert ytd["prior_year"]["emergency_admissions"] > 0

        # The monitor judges every settled week on the live counts: the drifting board alerts, and the
        # alert events are exactly those the same rules give offline on the oracle's counts.
        plans = load_plan_at_scale(tmp_path)
        monitor = Monitor(config, plans, PLAN_YEAR)
        try:
            events = monitor.evaluate()
            assert monitor.evaluate() == []  # a second round on the same data adds nothing
        finally:
            monitor.close()
        assert "E08000025" in {e.board for e in events if e.state is AlertState.RAISED}
        on_topic = [parse_alert(r.value) for r in read_topic(broker.bootstrap, config.topics.alerts)]
        assert on_topic == events
        settled = settled_from_log(event_log)
        expected = alert_timeline(plans, daily_emergency_admissions(oracle), PLAN_YEAR, settled)
        assert events == expected

        # The offline backtest (pandas, no Kafka) gives the same counts and the same alert timeline.
        offline = backtest(event_log, plans, PLAN_YEAR)
        pd.testing.assert_frame_equal(offline.counts.reset_index(drop=True), live.reset_index(drop=True))
        assert sorted(offline.alerts, key=timeline_key) == sorted(events, key=timeline_key)
        assert set(offline.held["event_id"]) >= {f"{TYPO_PREFIX}{n}" for n in range(3)}

        # Replaying the whole log again into the same prefix changes no count, late_events included.
        _replay(broker, event_log, topic_prefix)
        _assert_equal_to_oracle(config, oracle)
    finally:
        worker.stop()


def load_plan_at_scale(tmp_path: Path):
    path = tmp_path / "plan.csv"
    write_sample_plan(path, scale=SCALE)
    return load_plan(path)


def settled_from_log(event_log: Path) -> dict:
    return settled_from_events(read_events(event_log), LATENESS // 86_400)


def test_worker_killed_twice_mid_stream_still_equals_oracle(broker, event_log, oracle, topic_prefix, tmp_path,
                                                             monkeypatch):
    # Seal event ids every 200 per partition, so the restarts load sealed segments (streams/seen_events.py).
    monkeypatch.setenv("BCFWATCH_SEEN_SEAL_AFTER", "200")
    config = _config(broker, topic_prefix, tmp_path, free_port())
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    replay_thread = threading.Thread(target=_replay, args=(broker, event_log, topic_prefix))
    replay_thread.start()
    total_lines = sum(1 for _ in open(event_log))
    try:
        for share in (0.25, 0.55):
            def covered(share=share) -> bool:
                snapshots = latest_snapshots(config)
                applied = sum(offset + 1 for s in snapshots.values() for offset in s["applied"].values())
                return applied >= share * total_lines
            wait_for(covered, CATCH_UP_SECONDS, f"the worker to process {share:.0%} of the log")
            worker.kill()
            assert not worker.alive()
            worker = WorkerProcess(config, tmp_path / "worker.log").start()
        replay_thread.join(timeout=CATCH_UP_SECONDS)
        _assert_equal_to_oracle(config, oracle)
        assert all(snapshot.get("seen_segments", 0) > 0 for snapshot in latest_snapshots(config).values())
    finally:
        replay_thread.join(timeout=CATCH_UP_SECONDS)
        worker.stop()


def test_two_workers_share_partitions_and_equal_oracle(broker, event_log, oracle, topic_prefix, tmp_path):
    first_port, second_port = free_port(), free_port()
    first = WorkerProcess(_config(broker, topic_prefix, tmp_path, first_port), tmp_path / "first.log").start()
    second = WorkerProcess(_config(broker, topic_prefix, tmp_path, second_port), tmp_path / "second.log").start()
    try:
        _replay(broker, event_log, topic_prefix)
        _assert_equal_to_oracle(first.config, oracle)

        # Each board is served by exactly one of the two workers: they split the partitions.
        def served_by(port: int) -> set[str]:
            served = set()
            for board in load_boards().codes:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/boards/{board}/metrics", timeout=10)
                    served.add(board)
                except urllib.error.HTTPError:
                    pass
            return served

        one, two = served_by(first_port), served_by(second_port)
        assert one and two and not one & two
        assert one | two == set(load_boards().codes)
    finally:
        first.stop()
        second.stop()
