"""Reading topics with kafka-python: read a topic (or part of one) to its end, and how far behind a reader is.

Every service that reads a topic through to its current end (the state reader, the monitor's live counts,
the notifier's ledger, the alert history) does it here: assign the partitions, seek, and poll until the
consumer's position reaches the end offsets taken at the start, within a deadline. Lag is counted the same
way everywhere: messages from a position (the next offset to read) to the end offset, never below zero.
The worker reads with aiokafka inside Faust and counts its lag with :func:`messages_behind`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from bcfwatch.infra.kafka_security import kafka_python_options


def reader(bootstrap: str, client_id: str, **options: Any) -> KafkaConsumer:
    """A consumer with no group and no auto-commit (it only reads), with the broker's security options."""
    return KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, client_id=client_id,
                         **kafka_python_options(), **options)


def topic_partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, in order (none if the topic does not exist yet)."""
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def messages_behind(end: int | None, position: int) -> int:
    """Messages from ``position`` (the next offset to read) to ``end`` (the end offset or high watermark;
    None, not known yet, counts as none)."""
    return 0 if end is None else max(0, end - position)


def consumer_lag(consumer: KafkaConsumer, ends: Mapping[TopicPartition, int | None]) -> int:
    """Messages between the consumer's position and ``ends``, summed over the partitions of ``ends``."""
    return sum(messages_behind(end, consumer.position(tp)) for tp, end in ends.items())


def poll_to_end(consumer: KafkaConsumer, ends: Mapping[TopicPartition, int], what: str, timeout: float = 60.0,
                poll_ms: int = 500, stop: Callable[[], bool] | None = None) -> Iterator[Any]:
    """Poll the (already assigned and positioned) consumer until its position reaches ``ends`` on every
    partition; yield the records in the order polled. ``stop``: checked before each poll; when it says so,
    the records end there. Raises :class:`TimeoutError` (naming ``what``) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(consumer.position(tp) < end for tp, end in ends.items()):
        if stop is not None and stop():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not read {what} to its end within {timeout:.0f} s")
        for records in consumer.poll(timeout_ms=poll_ms).values():
            yield from records


def read_partitions_to_end(consumer: KafkaConsumer, partitions: Iterable[TopicPartition], what: str,
                           timeout: float = 60.0) -> list[Any]:
    """Every record of ``partitions`` from the beginning to their current end, partition by partition, in
    offset order."""
    partitions = list(partitions)
    if not partitions:
        return []
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    found: dict[TopicPartition, list] = {tp: [] for tp in partitions}
    for record in poll_to_end(consumer, consumer.end_offsets(partitions), what, timeout):
        found[TopicPartition(record.topic, record.partition)].append(record)
    return [record for tp in partitions for record in found[tp]]


def read_topic_records(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Any]:
    """Every message on ``topic`` (kafka-python ConsumerRecords: topic, partition, offset, key, value),
    partition by partition, in offset order."""
    consumer = reader(bootstrap, "bcfwatch-reader")
    try:
        return read_partitions_to_end(consumer, topic_partitions(consumer, topic), topic, timeout)
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topics: Iterable[str], client_id: str = "bcfwatch-lag") -> dict[TopicPartition, int]:
    """The end offset of every partition of ``topics``."""
    consumer = reader(bootstrap, client_id)
    try:
        return consumer.end_offsets([tp for topic in topics for tp in topic_partitions(consumer, topic)])
    finally:
        consumer.close()
