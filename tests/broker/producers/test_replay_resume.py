"""`bcfwatch replay` as an operator runs it: killed with SIGKILL and resumed, and riding out broker outages.

The replays are real subprocesses on a real broker. After a kill -9 the checkpoint must never be ahead of
the broker (every line up to it is on the topics), `--resume` must continue after it (only lines past it can
arrive twice), and a worker fed the killed-and-resumed replay must count exactly what the oracle counts for
one clean replay. With the broker stopped mid-replay, the replay must say so while it waits, carry on when
the broker is back, and give up with a clear message (exit 1, no traceback) when told to wait less.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import orjson
import pandas as pd
import pytest

from bcfwatch.core.events import InvalidEvent
from bcfwatch.core.topics import EVENT_TYPES, Topics
from bcfwatch.demo.worker_process import WorkerProcess
from bcfwatch.infra.broker import Broker
from producers.eventlog.logformat import check_line, read_log
from producers.generate import GeneratorSpec
from producers.replay import checkpoint_path, read_checkpoint
from streams.app import WorkerConfig
from streams.daily_table import from_state
from streams.oracle import oracle_counts
from streams.state_reader import day_counts, wait_until_caught_up
from tests.support import free_port, read_topic, wait_for

pytestmark = pytest.mark.kafka
PARTITIONS = 4
LATENESS = 14 * 86_400


@pytest.fixture(scope="module")
def event_log(generated_log) -> Path:
    """About 30,000 lines: out of order, duplicated and malformed lines included."""
    return generated_log(GeneratorSpec(date(2014, 4, 1), date(2014, 6, 30), scale=0.01, seed=14,
                                       malformed_share=0.005), "resume")


def valid_lines(log: Path) -> dict[int, tuple[str, str]]:
    """Line number -> (event type, event_id) of every line the contract accepts."""
    accepted = {}
    for line in read_log(log):
        try:
            _, fields, _ = check_line(line)
        except InvalidEvent:
            continue
        accepted[line.number] = (line.row["type"], fields["event_id"])
    return accepted


def on_topics(bootstrap: str, topics: Topics) -> Counter:
    """(type, event_id) -> how many times it is on the event topics."""
    arrived: Counter = Counter()
    for event_type in EVENT_TYPES:
        for record in read_topic(bootstrap, topics.event(event_type)):
            arrived[(event_type, orjson.loads(record.value)["event_id"])] += 1
    return arrived


def start_replay(log: Path, bootstrap: str, prefix: str, cache: Path, output: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    with open(output, "ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "bcfwatch.cli", "replay", str(log), "--topic-prefix", prefix, "--bootstrap",
             bootstrap, "--partitions", str(PARTITIONS), *extra],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def acknowledged(log: Path, prefix: str, bootstrap: str, cache: Path) -> int:
    checkpoint = read_checkpoint(checkpoint_path(log, prefix, bootstrap, cache / "bcfwatch" / "replay-checkpoints"))
    return checkpoint.acknowledged_through_line if checkpoint is not None else 0


def replay_killed_a_third_in(log: Path, bootstrap: str, prefix: str, cache: Path, output: Path, total: int,
                             timeout: float, *extra: str, speed: str = "4000", helpers_expected: bool = False) -> int:
    """Start `bcfwatch replay`, SIGKILL it once a third of the log is acknowledged; the checkpoint at the kill.
    Any helper processes it had (``helpers_expected``: it must have some) end with it."""
    replaying = start_replay(log, bootstrap, prefix, cache, output, *extra, "--speed", speed)
    helpers: set[int] = set()
    try:
        wait_for(lambda: acknowledged(log, prefix, bootstrap, cache) > total // 3, timeout,
                 "a third of the log acknowledged")
        helpers = children(replaying.pid)  # the packing processes of an unpaced --packed replay
    finally:
        replaying.send_signal(signal.SIGKILL)
        replaying.wait(30)
    at_kill = acknowledged(log, prefix, bootstrap, cache)
    assert total // 3 < at_kill < total, "killed mid-way"
    assert helpers or not helpers_expected, "the replay had no helper processes to check"
    wait_for(lambda: not any(running(pid) for pid in helpers), 30, "the killed replay's helper processes to end")
    return at_kill


def children(pid: int) -> set[int]:
    """The child processes of ``pid`` (Linux)."""
    return {int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()}


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (a zombie waiting to be reaped has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def finish(process: subprocess.Popen, timeout: float) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)
        raise AssertionError(f"replay did not finish within {timeout} s") from None


def test_replay_killed_with_sigkill_then_resumed_counts_like_one_clean_replay(broker, event_log, topic_prefix,
                                                                               tmp_path):
    topics, cache, output = Topics(topic_prefix), tmp_path / "cache", tmp_path / "replay.out"
    lines = valid_lines(event_log)
    total = max(lines)
    at_kill = replay_killed_a_third_in(event_log, broker.bootstrap, topic_prefix, cache, output, total, 120)

    # Never ahead of the broker: every valid line up to the checkpoint is on the topics.
    arrived = on_topics(broker.bootstrap, topics)
    missing = [n for n, event in lines.items() if n <= at_kill and event not in arrived]
    assert not missing, f"lines at or before the checkpoint (line {at_kill}) not on the broker: {missing[:10]}"

    resumed = start_replay(event_log, broker.bootstrap, topic_prefix, cache, output, "--resume", "--speed", "max")
    assert finish(resumed, 300) == 0, output.read_text()
    said = output.read_text()
    assert f"resuming after line {at_kill:,}" in said and "(after line" in said and "Traceback" not in said

    # Every valid event is on its topic, and only lines after the checkpoint can have arrived more often
    # than the log holds them (the killed run sent them, the resumed run sent them again).
    arrived = on_topics(broker.bootstrap, topics)
    in_log = Counter(lines.values())
    assert set(arrived) == set(in_log)
    repeated = {event for event, times in arrived.items() if times > in_log[event]}
    lines_of = {}
    for number, event in lines.items():
        lines_of.setdefault(event, []).append(number)
    assert all(max(lines_of[event]) > at_kill for event in repeated)
    assert sum(arrived.values()) < sum(in_log.values()) + (total - at_kill), "resume started after the checkpoint"

    # A worker counts the killed-and-resumed replay exactly as the oracle counts the log once.
    config = WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=topic_prefix, partitions=PARTITIONS,
                          datadir=tmp_path / "worker", web_port=free_port())
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        live = from_state(day_counts(wait_until_caught_up(config, 600)))
    finally:
        worker.stop()
    pd.testing.assert_frame_equal(live.reset_index(drop=True),
                                  oracle_counts(event_log, LATENESS).reset_index(drop=True))

    # Resuming a finished replay sends nothing.
    again = subprocess.run([sys.executable, "-m", "bcfwatch.cli", "replay", str(event_log), "--topic-prefix",
                            topic_prefix, "--bootstrap", broker.bootstrap, "--resume"],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    assert again.returncode == 0 and "already replayed completely" in again.stdout
    assert on_topics(broker.bootstrap, topics) == arrived


@pytest.fixture
def own_broker() -> Broker:
    """A broker of this test's own, to stop and start (free ports, own data dir)."""
    kafka = Broker(port=free_port(), controller_port=free_port())
    kafka.start(fresh=True)
    yield kafka
    kafka.stop()
    shutil.rmtree(kafka.home, ignore_errors=True)


def test_replay_reports_a_broker_outage_rides_it_out_and_gives_up_after_the_delivery_timeout(own_broker, event_log,
                                                                                             topic_prefix, tmp_path):
    bootstrap, cache = own_broker.bootstrap, tmp_path / "cache"
    lines = valid_lines(event_log)

    # 1. The broker stops mid-replay and comes back: the replay says so while it waits, then finishes.
    output = tmp_path / "outage.out"
    replaying = start_replay(event_log, bootstrap, topic_prefix, cache, output, "--speed", "1500")
    try:
        wait_for(lambda: acknowledged(event_log, topic_prefix, bootstrap, cache) > 3000, 120, "deliveries")
        own_broker.stop()
        stopped = time.monotonic()
        wait_for(lambda: "unreachable for" in output.read_text(), 60, "an outage warning")
        assert replaying.poll() is None, output.read_text()
        own_broker.start()
        assert finish(replaying, 300) == 0, output.read_text()
    finally:
        if replaying.poll() is None:
            replaying.kill()
    said = output.read_text()
    assert f"broker {bootstrap} unreachable for" in said and "retrying" in said
    assert "acknowledges deliveries again after" in said and "broker outages ridden out" in said
    assert "Traceback" not in said
    assert set(on_topics(bootstrap, Topics(topic_prefix))) == set(lines.values())
    assert time.monotonic() - stopped > 5

    # 2. The broker stops and stays down: with a short delivery timeout the replay gives up, exit 1, no traceback.
    prefix, output = f"{topic_prefix}b", tmp_path / "gives-up.out"
    replaying = start_replay(event_log, bootstrap, prefix, cache, output, "--speed", "1500",
                             "--delivery-timeout", "8")
    try:
        wait_for(lambda: acknowledged(event_log, prefix, bootstrap, cache) > 3000, 120, "deliveries")
        own_broker.stop()
        code = finish(replaying, 90)
    finally:
        if replaying.poll() is None:
            replaying.kill()
    said = output.read_text()
    assert code == 1, said
    assert "gave up" in said and "--delivery-timeout" in said and "--resume" in said and "Traceback" not in said
    assert "unreachable for" in said

    # 3. What it had delivered is in its checkpoint: --resume with the broker back completes the log.
    given_up_at = acknowledged(event_log, prefix, bootstrap, cache)
    assert 3000 < given_up_at < max(lines)
    own_broker.start()
    resumed = start_replay(event_log, bootstrap, prefix, cache, output, "--resume")
    assert finish(resumed, 300) == 0, output.read_text()
    assert f"resuming after line {given_up_at:,}" in output.read_text()
    assert set(on_topics(bootstrap, Topics(prefix))) == set(lines.values())
