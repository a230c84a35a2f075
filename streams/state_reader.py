"""Read the workers' durable state from Kafka: the latest snapshot of every partition.

Each snapshot read is checked against the state topic's schema (``monitors/topic_schemas.py``); one that
fails is sent to ``PREFIX.dead_letter`` with its reason (once per process) and the one before it is used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bcfwatch.core.topics import SNAPSHOT_MAX_BYTES
from bcfwatch.infra.kafka_security import kafka_python_options
from streams.app import WorkerConfig

log = logging.getLogger(__name__)
LOOK_BACK = 32  # how many earlier snapshots of a partition to try when the latest fails its schema
_dead_lettered: set[tuple[str, int, int]] = set()  # (topic, partition, offset) already sent, this process


def latest_snapshots(config: WorkerConfig) -> dict[int, dict]:
    """Partition -> its latest snapshot (decoded), for every partition that has one."""
    consumer = KafkaConsumer(bootstrap_servers=config.bootstrap, enable_auto_commit=False,
                             client_id="bcfwatch-state-reader", fetch_max_bytes=SNAPSHOT_MAX_BYTES,
                             max_partition_fetch_bytes=SNAPSHOT_MAX_BYTES, **kafka_python_options())
    try:
        partitions = [TopicPartition(config.state_topic, p)
                      for p in sorted(consumer.partitions_for_topic(config.state_topic) or ())]
        if not partitions:
            return {}
        end = consumer.end_offsets(partitions)
        snapshots = {}
        for tp in partitions:
            for look_back in (0, LOOK_BACK):  # the newest first; earlier ones only if it fails its schema
                snapshot = next((valid for record in reversed(_tail(consumer, tp, end[tp], look_back))
                                 if (valid := _valid_snapshot(record, tp, config)) is not None), None)
                if snapshot is not None:
                    snapshots[tp.partition] = snapshot
                    break
        return snapshots
    finally:
        consumer.close()


def _tail(consumer: KafkaConsumer, tp: TopicPartition, end: int, look_back: int) -> list:
    """The records of a state partition from offset ``end - 1 - look_back`` to its end, in offset order
    (whatever offsets compaction or control records left: the reader never waits for one exact offset)."""
    if end <= 0:
        return []
    consumer.assign([tp])
    consumer.seek(tp, max(0, end - 1 - look_back))
    records: list = []
    deadline = time.monotonic() + 60
    while consumer.position(tp) < end:
        if time.monotonic() > deadline:
            if records:
                break  # read what there is; the newest of it is the best available
            raise TimeoutError(f"could not read the snapshot of partition {tp.partition}")
        records.extend(consumer.poll(timeout_ms=1000).get(tp, []))
    return records


def _valid_snapshot(record, tp: TopicPartition, config: WorkerConfig) -> dict | None:
    from bcfwatch.core.messages import InvalidMessage, dead_letter_record
    from streams.published import parse_snapshot

    offset = record.offset
    try:
        return parse_snapshot(record.value, tp.partition).document
    except InvalidMessage as error:
        if (tp.topic, tp.partition, offset) not in _dead_lettered:
            log.warning("snapshot %s[%d]@%d is invalid (%s): dead-lettered, using the one before", tp.topic,
                        tp.partition, offset, error)
            from bcfwatch.infra.kafka_admin import ensure_topics

            ensure_topics(config.bootstrap, [config.topics.dead_letter], config.partitions)
            producer = KafkaProducer(bootstrap_servers=config.bootstrap, acks="all", **kafka_python_options())
            try:
                producer.send(config.topics.dead_letter, value=dead_letter_record(
                    "state-reader", error, tp.topic, tp.partition, offset, record.key, record.value))
                producer.flush()
            finally:
                producer.close()
            _dead_lettered.add((tp.topic, tp.partition, offset))
        return None


def read_topic_values(bootstrap: str, topic: str, timeout: float = 60.0) -> list[bytes]:
    """Every message value on ``topic``, partition by partition, in offset order."""
    return [record.value for record in read_topic_records(bootstrap, topic, timeout)]


def read_topic_records(bootstrap: str, topic: str, timeout: float = 60.0) -> list:
    """Every message on ``topic`` (kafka-python ConsumerRecords: topic, partition, offset, key, value),
    partition by partition, in offset order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="bcfwatch-reader",
                             **kafka_python_options())
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        found: dict[TopicPartition, list] = {tp: [] for tp in partitions}
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout:.0f} s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                found[tp].extend(records)
        return [record for tp in partitions for record in found[tp]]
    finally:
        consumer.close()


def events_behind(config: WorkerConfig, snapshots: dict[int, dict]) -> int:
    """Events on the source topics not yet covered by a durable snapshot."""
    consumer = KafkaConsumer(bootstrap_servers=config.bootstrap, client_id="bcfwatch-lag", **kafka_python_options())
    try:
        partitions = [TopicPartition(topic, p) for topic in config.topics.events
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        end = consumer.end_offsets(partitions)
    finally:
        consumer.close()
    behind = 0
    for tp in partitions:
        applied = snapshots.get(tp.partition, {}).get("applied", {}).get(tp.topic, -1)
        behind += end[tp] - (applied + 1)
    return behind


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
