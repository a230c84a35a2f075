"""Read the workers' durable state from Kafka: the latest snapshot of every partition.

Each snapshot read is checked against the state topic's schema (``streams/published.py``); one that
fails is sent to ``PREFIX.dead_letter`` with its reason (once per process) and the one before it is used.
Reading to a topic's end and counting what is behind are :mod:`bcfwatch.infra.kafka`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bcfwatch.core.messages import InvalidMessage, invalid_message_record
from bcfwatch.core.topics import SNAPSHOT_MAX_BYTES
from bcfwatch.infra.kafka import (
    across_cluster_changes,
    end_offsets,
    ensure_topics,
    messages_behind,
    poll_to_end,
    reader,
    topic_partitions,
)
from bcfwatch.infra.kafka_security import kafka_python_options
from streams.config import WorkerConfig
from streams.published import SNAPSHOT_LOOK_BACK, parse_snapshot

log = logging.getLogger(__name__)
_dead_lettered: set[tuple[str, int, int]] = set()  # (topic, partition, offset) already sent, this process


@across_cluster_changes
def latest_snapshots(config: WorkerConfig) -> dict[int, dict]:
    """Partition -> its latest snapshot (decoded), for every partition that has one."""
    consumer = snapshot_reader(config, "bcfwatch-state-reader")
    try:
        partitions = topic_partitions(consumer, config.state_topic)
        if not partitions:
            return {}
        end = consumer.end_offsets(partitions)
        snapshots = {}
        for tp in partitions:
            for look_back in (0, SNAPSHOT_LOOK_BACK):  # the newest first; earlier ones only if it fails its schema
                snapshot = next((valid for record in reversed(tail_records(consumer, tp, end[tp], look_back))
                                 if (valid := _valid_snapshot(record, tp, config)) is not None), None)
                if snapshot is not None:
                    snapshots[tp.partition] = snapshot
                    break
        return snapshots
    finally:
        consumer.close()


def snapshot_reader(config: WorkerConfig, client_id: str) -> KafkaConsumer:
    """A reader of the state topic, its fetches sized for the largest snapshot."""
    return reader(config.bootstrap, client_id, fetch_max_bytes=SNAPSHOT_MAX_BYTES,
                  max_partition_fetch_bytes=SNAPSHOT_MAX_BYTES)


def tail_records(consumer: KafkaConsumer, tp: TopicPartition, end: int, look_back: int) -> list:
    """The records of a state partition from offset ``end - 1 - look_back`` to its end, in offset order
    (whatever offsets compaction or control records left: the reader never waits for one exact offset)."""
    if end <= 0:
        return []
    consumer.assign([tp])
    consumer.seek(tp, max(0, end - 1 - look_back))
    records: list = []
    try:
        for record in poll_to_end(consumer, {tp: end}, f"the snapshot of partition {tp.partition}", poll_ms=1000):
            records.append(record)
    except TimeoutError:
        if not records:
            raise
        # read what there is; the newest of it is the best available
    return records


def _valid_snapshot(record, tp: TopicPartition, config: WorkerConfig) -> dict | None:
    offset = record.offset
    try:
        return parse_snapshot(record.value, tp.partition).document
    except InvalidMessage as error:
        if (tp.topic, tp.partition, offset) not in _dead_lettered:
            log.warning("snapshot %s[%d]@%d is invalid (%s): dead-lettered, using the one before", tp.topic,
                        tp.partition, offset, error)
            ensure_topics(config.bootstrap, [config.topics.dead_letter], config.partitions)
            producer = KafkaProducer(bootstrap_servers=config.bootstrap, acks="all", **kafka_python_options())
            try:
                producer.send(config.topics.dead_letter, value=invalid_message_record("state-reader", error, record))
                producer.flush()
            finally:
                producer.close()
            _dead_lettered.add((tp.topic, tp.partition, offset))
        return None


@across_cluster_changes
def events_behind(config: WorkerConfig, snapshots: dict[int, dict]) -> int:
    """Events on the source topics not yet covered by a durable snapshot."""
    return sum(messages_behind(end, snapshots.get(tp.partition, {}).get("applied", {}).get(tp.topic, -1) + 1)
               for tp, end in end_offsets(config.bootstrap, config.topics.events).items())


def wait_until_caught_up(config: WorkerConfig, timeout: float, on_progress: Callable[[int], None] | None = None,
                         poll_seconds: float = 0.5) -> dict[int, dict]:
    """Poll until the durable snapshots cover every event on the source topics; return them."""
    deadline = time.monotonic() + timeout
    while True:
        snapshots = latest_snapshots(config)
        behind = events_behind(config, snapshots)
        if on_progress is not None:
            on_progress(behind)
        if behind == 0:
            return snapshots
        if time.monotonic() > deadline:
            raise TimeoutError(f"the workers still had {behind:,} events to process after {timeout:.0f} s")
        time.sleep(poll_seconds)


def day_counts(snapshots: dict[int, dict]) -> dict[str, list[int]]:
    merged: dict[str, list[int]] = {}
    for snapshot in snapshots.values():
        merged.update(snapshot["day_counts"])
    return merged
