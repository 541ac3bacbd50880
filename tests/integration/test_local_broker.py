"""A real single-node Kafka broker: produce, consume, restart, and the data is still there."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.kafka.local_broker import LocalBroker, probe_create_topic

TOPIC = "local-broker-test"
GROUP = "local-broker-test-group"


async def produce_one(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, b"pi", key=b"job-1")
    finally:
        await producer.stop()


async def consume_one(bootstrap: str, group: str) -> tuple[bytes | None, bytes | None]:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit()
        return record.key, record.value
    finally:
        await consumer.stop()


async def committed_offset(bootstrap: str, group: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(TOPIC, 0))
        return offset
    finally:
        await consumer.stop()


@pytest.mark.timeout(240)
def test_messages_survive_a_broker_restart(tmp_path: Path) -> None:
    broker = LocalBroker.on_free_ports(tmp_path / "kafka")
    try:
        broker.start()
        broker.wait_ready()
        asyncio.run(produce_one(broker.bootstrap_servers))
        assert asyncio.run(consume_one(broker.bootstrap_servers, GROUP)) == (b"job-1", b"pi")

        broker.stop()
        broker.start()  # same data dir: no reformat
        broker.wait_ready()
        assert probe_create_topic(broker.host, broker.port) == 0
        assert asyncio.run(committed_offset(broker.bootstrap_servers, GROUP)) == 1
        fresh_group = f"{GROUP}-after-restart"
        assert asyncio.run(consume_one(broker.bootstrap_servers, fresh_group)) == (b"job-1", b"pi")
    finally:
        broker.stop()
    assert broker.process is None
