"""Follow the live counts the workers publish to ``PREFIX.board_days`` (``streams/partition_state.py``).

The topic is compacted and keyed by ``board|YYYY-MM-DD`` (value ``{"counts": [...COUNTERS]}``) and
``board|clock|type`` (value ``{"stream_time": seconds}``). The workers publish what each snapshot
changed just before writing the snapshot, so the monitor reads only what changed since its last round
instead of every worker's whole state.
"""

from __future__ import annotations

import time

import orjson
from kafka import KafkaConsumer, TopicPartition


class BoardDays:
    """The latest day counts and stream times on the topic, kept up to date by :meth:`refresh`."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                      client_id="bcfwatch-board-days")
        self.partitions: list[TopicPartition] = []
        self.day_counts: dict[str, list[int]] = {}  # board|YYYY-MM-DD -> COUNTERS
        self.stream_times: dict[str, float] = {}  # board|type -> epoch seconds

    def refresh(self, timeout: float = 60.0) -> set[str]:
        """Read to the topic's current end; return the boards whose counts or clocks changed."""
        if not self.partitions:
            found = self.consumer.partitions_for_topic(self.topic)
            if not found:
                return set()  # no worker has published yet
            self.partitions = [TopicPartition(self.topic, p) for p in sorted(found)]
            self.consumer.assign(self.partitions)
            self.consumer.seek_to_beginning(*self.partitions)
        end = self.consumer.end_offsets(self.partitions)
        changed: set[str] = set()
        deadline = time.monotonic() + timeout
        while any(self.consumer.position(tp) < end[tp] for tp in self.partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {self.topic} to its end within {timeout:.0f} s")
            for records in self.consumer.poll(timeout_ms=100).values():
                for record in records:
                    changed.add(self._apply(record.key.decode(), orjson.loads(record.value)))
        return changed

    def _apply(self, key: str, value: dict) -> str:
        board, _, rest = key.partition("|")
        if rest.startswith("clock|"):
            self.stream_times[f"{board}|{rest[len('clock|'):]}"] = value["stream_time"]
        else:
            self.day_counts[key] = value["counts"]
        return board

    def close(self) -> None:
        self.consumer.close()
