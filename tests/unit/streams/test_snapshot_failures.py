"""A snapshot the broker does not take (an error, or no answer within the bound) is given up until the next tick:
nothing is acknowledged, nothing is lost, the other partitions still snapshot, the failing partition is named
while it lasts, and it recovers by itself (issue 26). A plain producer stands in for Kafka."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import streams.partition_state as partition_state
from streams.partition_state import PartitionState, PartitionStates


@dataclass
class Sent:
    offset: int


class Producer:
    """Takes writes, refuses them (``refuse``), or never answers (``hang``) for the partitions named."""

    def __init__(self) -> None:
        self.refuse: set[int] = set()
        self.hang: set[int] = set()
        self.written: list[tuple[str, int]] = []

    async def _write(self, topic: str, partition: int) -> Sent:
        if partition in self.refuse:
            raise ConnectionError("LeaderNotAvailableError")
        if partition in self.hang:
            await asyncio.Event().wait()
        self.written.append((topic, partition))
        return Sent(len(self.written))

    async def send_and_wait(self, topic: str, key: Any = None, value: Any = None, partition: int = 0) -> Sent:
        return await self._write(topic, partition)

    async def send(self, topic: str, key: Any = None, value: Any = None, partition: int = 0) -> asyncio.Future:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        future.set_result(await self._write(topic, partition))
        return future


class Acknowledged:
    def __init__(self) -> None:
        self.acked = False

    def ack(self) -> None:
        self.acked = True


def partition_states(tmp_path: Path, producer: Producer) -> PartitionStates:
    states = PartitionStates("127.0.0.1:1", "app-state", tmp_path, "p.board_days", None, seen_topic="app-seen",
                             seen_seal_after=1000, lateness_seconds=14 * 86_400)
    states.producer = producer  # type: ignore[assignment]
    states._cache = {}  # type: ignore[assignment]  # stands in for the RocksDB copy
    return states


def applied(states: PartitionStates, partition: int, offset: int) -> Acknowledged:
    state = states.owned.setdefault(partition, PartitionState(partition))
    event = Acknowledged()
    state.applied_event("p.admission", offset, event)
    return event


def test_a_refused_or_unanswered_snapshot_is_kept_for_the_next_tick_and_blocks_no_other(tmp_path, monkeypatch):
    monkeypatch.setattr(partition_state, "SNAPSHOT_WRITE_SECONDS", 0.2)
    producer = Producer()
    states = partition_states(tmp_path, producer)
    producer.refuse, producer.hang = {1}, {2}
    events = {partition: applied(states, partition, 7) for partition in (0, 1, 2)}

    asyncio.run(states.save_dirty(every=True))

    assert events[0].acked and not events[1].acked and not events[2].acked
    assert set(states.failing) == {1, 2}
    assert "LeaderNotAvailableError" in states.failing[1].describe()
    assert "TimeoutError" in states.failing[2].describe()
    for partition in (1, 2):  # nothing given back is lost: still dirty, its events waiting
        assert states.owned[partition].dirty and len(states.owned[partition].unacked) == 1

    later = applied(states, 1, 8)
    asyncio.run(states.save_dirty(every=True))
    assert states.failing[1].attempts == 2 and not later.acked

    producer.refuse, producer.hang = set(), set()
    asyncio.run(states.save_dirty(every=True))
    assert states.failing == {}
    assert events[1].acked and events[2].acked and later.acked
    snapshots = [partition for topic, partition in producer.written if topic == "app-state"]
    assert sorted(snapshots) == [0, 1, 2]


def test_a_released_partition_whose_snapshot_fails_is_dropped_for_its_next_owner(tmp_path, monkeypatch):
    monkeypatch.setattr(partition_state, "SNAPSHOT_WRITE_SECONDS", 0.2)
    producer = Producer()
    states = partition_states(tmp_path, producer)
    producer.hang = {3}
    event = applied(states, 3, 1)
    asyncio.run(states.release({3}))
    assert 3 not in states.owned and 3 not in states.failing and not event.acked  # read again by the next owner


@pytest.mark.parametrize("how", ["refuse", "hang"])
def test_the_failure_is_logged_once_then_once_per_interval(tmp_path, monkeypatch, caplog, how):
    monkeypatch.setattr(partition_state, "SNAPSHOT_WRITE_SECONDS", 0.05)
    monkeypatch.setattr(partition_state, "FAILURE_LOG_SECONDS", 3600.0)
    producer = Producer()
    setattr(producer, how, {0})
    states = partition_states(tmp_path, producer)
    for offset in range(5):
        applied(states, 0, offset)
        asyncio.run(states.save_dirty(every=True))
    lines = [r.getMessage() for r in caplog.records if "partition 0" in r.getMessage()]
    assert len(lines) == 1 and "could not be written" in lines[0]
    setattr(producer, how, set())
    asyncio.run(states.save_dirty(every=True))
    assert "snapshots written again" in caplog.records[-1].getMessage()


def test_one_unanswered_snapshot_per_tick_is_waited_for_not_one_per_partition(tmp_path, monkeypatch):
    monkeypatch.setattr(partition_state, "SNAPSHOT_WRITE_SECONDS", 0.2)
    producer = Producer()
    producer.hang = {0, 1, 2, 3}
    states = partition_states(tmp_path, producer)
    for partition in range(4):
        applied(states, partition, 1)

    async def tick() -> None:  # the bound, once: the partitions after the first are not tried this tick
        await asyncio.wait_for(states.save_dirty(every=True), 0.2 * 1.5 + 0.1)

    asyncio.run(tick())
    assert set(states.failing) == {0, 1, 2, 3}
    assert "not tried: partition 0's snapshot was not answered" in states.failing[3].describe()


def test_a_producer_whose_idempotence_broke_is_replaced_and_the_snapshot_written_by_the_new_one(tmp_path):
    from aiokafka.errors import OutOfOrderSequenceNumber

    class Broken(Producer):
        stopped = False

        async def _write(self, topic: str, partition: int) -> Sent:
            raise OutOfOrderSequenceNumber()

        async def stop(self) -> None:
            self.stopped = True

    broken, fresh = Broken(), Producer()
    states = partition_states(tmp_path, broken)

    async def new_producer() -> Producer:
        return fresh

    states._new_producer = new_producer  # type: ignore[method-assign]
    event = applied(states, 0, 1)
    asyncio.run(states.save_dirty(every=True))
    assert broken.stopped and states.producer is fresh and not event.acked  # given up, producer replaced
    asyncio.run(states.save_dirty(every=True))
    assert event.acked and states.failing == {} and ("app-state", 0) in fresh.written


class Clock:
    """The snapshot module's clock (``time.monotonic``), moved only by the broker below: under the ``applying``
    lock no time passes, so a snapshot holds up the event loop for 0 s."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now


class SlowBroker(Producer):
    """Answers every write a second late on ``clock`` (a broker far away, or busy)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    async def _write(self, topic: str, partition: int) -> Sent:
        self.clock.now += 1.0
        return await super()._write(topic, partition)


def test_snapshots_are_spaced_by_the_event_loops_time_not_the_brokers_and_a_caught_up_partition_goes_at_once(
        tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(partition_state, "time", clock)
    states = partition_states(tmp_path, SlowBroker(clock))
    first = applied(states, 0, 1)
    started = clock.now
    asyncio.run(states.save_dirty(every=True))
    state = states.owned[0]
    assert first.acked and clock.now - started >= 1.0
    # spaced by the broker's second, the next snapshot would wait 1.0 / SNAPSHOT_TIME_SHARE = 10 s
    assert state.next_snapshot_at - started < 1.0

    state.next_snapshot_at = clock.now + 60  # as after a costly snapshot
    second = applied(states, 0, 2)
    asyncio.run(states.save_dirty())
    assert not second.acked and state.dirty  # not due yet
    asyncio.run(states.save_dirty(caught_up={0}))
    assert second.acked and not state.dirty  # nothing left to apply: its counts settle now
