"""The chosen Kafka version works with both clients the project uses (kafka-python and Faust's aiokafka)."""

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaProducer

from bcfwatch.infra.broker import KAFKA_VERSION, Broker
from bcfwatch.infra.kafka import ensure_topics
from tests.support import read_topic

pytestmark = pytest.mark.kafka


def test_broker_is_the_pinned_version(broker: Broker):
    assert (broker.libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists()
    assert broker.accepts_connections() and broker.pid() is not None


def test_kafka_python_and_aiokafka_round_trip(broker: Broker, topic_prefix: str):
    topic = f"{topic_prefix}.compat"
    ensure_topics(broker.bootstrap, [topic], 2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=True)
    producer.send(topic, key=b"E09000012", value=b"from kafka-python").get(timeout=30)
    producer.close()

    async def with_aiokafka() -> list[bytes]:
        aio_producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True)
        await aio_producer.start()
        try:
            await aio_producer.send_and_wait(topic, key=b"E09000012", value=b"from aiokafka")
        finally:
            await aio_producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                                    group_id=f"{topic_prefix}-group")
        await consumer.start()
        seen: list[bytes] = []
        try:
            async with asyncio.timeout(30):
                while len(seen) < 2:
                    batch = await consumer.getmany(timeout_ms=500)
                    seen.extend(m.value for messages in batch.values() for m in messages)
        finally:
            await consumer.stop()
        return seen

    assert sorted(asyncio.run(with_aiokafka())) == [b"from aiokafka", b"from kafka-python"]
    assert sorted(r.value for r in read_topic(broker.bootstrap, topic)) == [b"from aiokafka", b"from kafka-python"]


def test_stop_and_restart_keeps_data(broker: Broker, topic_prefix: str):
    topic = f"{topic_prefix}.durable"
    ensure_topics(broker.bootstrap, [topic], 1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    producer.send(topic, value=b"kept").get(timeout=30)
    producer.close()
    assert broker.stop()
    assert not broker.accepts_connections()
    broker.start()
    assert [r.value for r in read_topic(broker.bootstrap, topic)] == [b"kept"]


def test_cluster_ids_never_look_like_options():
    from bcfwatch.infra.broker import kafka_cluster_id

    ids = [kafka_cluster_id() for _ in range(2_000)]  # one in 64 random ids starts with '-'
    assert all(not cluster_id.startswith("-") and len(cluster_id) == 22 for cluster_id in ids)
