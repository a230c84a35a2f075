"""Packed records (docs/wire-format.md): many events of one board and type in one Kafka record.

The worker reads packed and single-event records mixed on the same topics, for the same boards, and ends with
exactly the oracle's counts on the equivalent log; a bad element of a packed record is dead-lettered alone;
a worker killed with SIGKILL twice while applying packed records recovers to the same counts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import orjson
import pandas as pd
import pytest
from kafka import KafkaProducer

from bcfwatch.core.boards import load_boards
from bcfwatch.core.events import PACKED_HEADERS, InvalidEvent, is_packed, pack, unpack
from bcfwatch.core.topics import EVENT_TYPES, Topics
from bcfwatch.demo.worker_process import WorkerProcess
from producers.eventlog.logformat import check_line, parse_json_line, row_to_event
from producers.generate import GeneratorSpec
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay
from streams.app import WorkerConfig
from streams.daily_table import from_state
from streams.oracle import oracle_counts
from streams.state_reader import day_counts, latest_snapshots, wait_until_caught_up
from tests.broker.producers.test_replay_resume import (
    acknowledged,
    finish,
    replay_killed_a_third_in,
    start_replay,
    valid_lines,
)
from tests.support import free_port, read_topic, wait_for

PARTITIONS = 8
LATENESS = 14 * 86_400
CATCH_UP_SECONDS = 600


# -- on the broker --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def event_log(generated_log) -> Path:
    return generated_log(GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=0.0025, seed=16,
                                       late_share=0.05, duplicate_share=0.01, malformed_share=0.005), "packed")


@pytest.fixture(scope="module")
def oracle(event_log) -> pd.DataFrame:
    return oracle_counts(event_log, LATENESS)


def _config(broker, prefix: str, tmp_path: Path) -> WorkerConfig:
    port = free_port()
    return WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=prefix, partitions=PARTITIONS,
                        datadir=tmp_path / f"worker-{port}", web_port=port)


def _counts(config: WorkerConfig) -> pd.DataFrame:
    return from_state(day_counts(wait_until_caught_up(config, CATCH_UP_SECONDS))).reset_index(drop=True)


@pytest.mark.kafka
def test_packed_and_single_records_mixed_on_one_topic_equal_the_oracle(broker, event_log, oracle, topic_prefix,
                                                                       tmp_path):
    lines = event_log.read_bytes().splitlines(keepends=True)
    # The last three valid events of one busy board and type are sent by hand as one packed record, with a bad
    # element between them and a record that is no JSON array at all: the rest of the log goes through replay.
    streams: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, raw in enumerate(lines):
        row = parse_json_line(index + 1, raw.rstrip(b"\n"))
        try:
            check_line(row)
        except InvalidEvent:
            continue
        streams[(row.row["type"], row.row["board"])].append(index)
    (event_type, board), indexes = max(streams.items(), key=lambda item: len(item[1]))
    by_hand = indexes[-3:]
    rest = [raw for index, raw in enumerate(lines) if index not in set(by_hand)]
    quarter = len(rest) // 4
    parts = [rest[:quarter], rest[quarter:2 * quarter], rest[2 * quarter:3 * quarter], rest[3 * quarter:]]

    config = _config(broker, topic_prefix, tmp_path)
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        pseudonymiser = Pseudonymiser(load_key())
        packed_records = 0
        for number, part in enumerate(parts):
            path = tmp_path / f"part{number}.jsonl"
            path.write_bytes(b"".join(part))
            report = replay(path, broker.bootstrap, Topics(topic_prefix), pseudonymiser, PARTITIONS,
                            packed=number % 2 == 1)
            assert (report.packed_records > 0) == (number % 2 == 1)
            packed_records += report.packed_records
        boards = load_boards()
        wires = [row_to_event(orjson.loads(lines[index]), pseudonymiser, boards).to_wire() for index in by_hand]
        bad = orjson.dumps({"type": event_type, "board": board, "nhs_number": "9434765919", "age": 7})
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        topic = config.topics.event(event_type)
        key = boards.resolve(board).encode()
        producer.send(topic, key=key, value=pack([wires[0], bad, wires[1], wires[2]]), headers=PACKED_HEADERS)
        producer.send(topic, key=key, value=b'{"not": "an array"}', headers=PACKED_HEADERS)
        producer.send(topic, key=key, value=pack(wires[:1]))  # an array without the header: one bad event
        producer.close()

        live = _counts(config)
        pd.testing.assert_frame_equal(live, oracle.reset_index(drop=True))
        assert packed_records > 0 and live["late_events"].sum() > 0

        dead = [orjson.loads(r.value) for r in read_topic(broker.bootstrap, config.topics.dead_letter)]
        from_worker = [d for d in dead if d["source"] == "worker"]
        assert sorted((d.get("packed", False), d.get("index", -1)) for d in from_worker) == [
            (False, -1), (True, -1), (True, 1)]
        assert all("9434765919" not in d["raw"] for d in dead)
        late = read_topic(broker.bootstrap, config.topics.late_events)
        assert len(late) == live["late_events"].sum()
    finally:
        worker.stop()


@pytest.mark.kafka
def test_worker_killed_twice_on_packed_input_still_equals_the_oracle(broker, event_log, oracle, topic_prefix,
                                                                     tmp_path, monkeypatch):
    # Small chunks make many small packed records, so the kills land while the worker is still applying them.
    monkeypatch.setenv("BCFWATCH_REPLAY_CHUNK_BYTES", "65536")
    monkeypatch.setenv("BCFWATCH_SEEN_SEAL_AFTER", "200")  # restarts load sealed event-id segments
    report = replay(event_log, broker.bootstrap, Topics(topic_prefix), Pseudonymiser(load_key()), PARTITIONS,
                    packed=True)
    assert report.packed_records > 1_000
    config = _config(broker, topic_prefix, tmp_path)
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        for share in (0.25, 0.55):
            def covered(share: float = share) -> bool:
                applied = sum(offset + 1 for snapshot in latest_snapshots(config).values()
                              for offset in snapshot["applied"].values())
                return applied >= share * report.packed_records
            wait_for(covered, CATCH_UP_SECONDS, f"the worker to apply {share:.0%} of the packed records")
            worker.kill()
            assert not worker.alive()
            worker = WorkerProcess(config, tmp_path / "worker.log").start()
        pd.testing.assert_frame_equal(_counts(config), oracle.reset_index(drop=True))
        assert all(snapshot.get("seen_segments", 0) > 0 for snapshot in latest_snapshots(config).values())
    finally:
        worker.stop()


@pytest.mark.kafka
@pytest.mark.parametrize("speed", ["4000", "max"], ids=["paced: line by line", "unpaced: column-wise"])
def test_packed_replay_killed_with_sigkill_never_runs_ahead_and_resumes(broker, event_log, topic_prefix, tmp_path,
                                                                        monkeypatch, speed):
    """The checkpoint of a packed replay is never ahead of the broker; --resume --packed completes the log.
    Unpaced, the log is packed column by column, in small chunks here so the kill lands mid-way."""
    monkeypatch.setenv("BCFWATCH_REPLAY_CHUNK_BYTES", "16384")
    cache, output = tmp_path / "cache", tmp_path / "replay.out"
    lines = valid_lines(event_log)
    total = max(lines)
    at_kill = replay_killed_a_third_in(event_log, broker.bootstrap, topic_prefix, cache, output, total, 300,
                                       "--packed", speed=speed, helpers_expected=speed == "max")
    arrived = packed_on_topics(broker.bootstrap, Topics(topic_prefix))
    missing = [n for n, event in lines.items() if n <= at_kill and event not in arrived]
    assert not missing, f"lines at or before the checkpoint (line {at_kill}) not on the broker: {missing[:10]}"

    resumed = start_replay(event_log, broker.bootstrap, topic_prefix, cache, output, "--packed", "--resume")
    assert finish(resumed, 300) == 0, output.read_text()
    assert f"resuming after line {at_kill:,}" in output.read_text()
    arrived = packed_on_topics(broker.bootstrap, Topics(topic_prefix))
    assert set(lines.values()) <= set(arrived)
    assert acknowledged(event_log, topic_prefix, broker.bootstrap, cache) >= total


def packed_on_topics(bootstrap: str, topics: Topics) -> Counter:
    """(type, event_id) -> how many times it is on the event topics, every record a packed one."""
    arrived: Counter = Counter()
    for event_type in EVENT_TYPES:
        for record in read_topic(bootstrap, topics.event(event_type)):
            assert is_packed(record.headers)
            for event in unpack(record.value):
                assert event["type"] == event_type and record.key == event["board"].encode()
                arrived[(event_type, event["event_id"])] += 1
    return arrived
