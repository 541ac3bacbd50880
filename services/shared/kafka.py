"""Kafka plumbing shared by the services: topics, a durable producer, connecting with retries."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.partitioner import DefaultPartitioner

from services.shared import tracing
from services.shared.events import Event, JobEvent, encode
from services.shared.records import DeliveredRecord
from services.shared.settings import KafkaSettings

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36
_T = TypeVar("_T")


def partition_names(partitions: Collection[TopicPartition]) -> str:
    """`pi-jobs.digits[0] pi-jobs.events[0,1,2]`: partitions as a log line names them."""
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return " ".join(f"{t}[{','.join(map(str, sorted(p)))}]" for t, p in sorted(by_topic.items()))


async def connect_with_retry(
    connect: Callable[[], Awaitable[_T]], what: str, deadline_seconds: float | None = None
) -> _T:
    """Retry `connect` with backoff while the broker is unreachable (it may still be starting)."""
    loop = asyncio.get_running_loop()
    give_up_at = None if deadline_seconds is None else loop.time() + deadline_seconds
    backoff = 0.2
    while True:
        try:
            return await connect()
        except (KafkaConnectionError, KafkaError, OSError) as error:
            if give_up_at is not None and loop.time() + backoff > give_up_at:
                raise
            log.warning("waiting for kafka", extra={"component": what, "error": repr(error)})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


async def ensure_topics(settings: KafkaSettings) -> None:
    """Create the topics if missing. Idempotent, so every service may call it at start."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    durability = {
        "min.insync.replicas": str(settings.pi_jobs_min_insync_replicas),
        "unclean.leader.election.enable": "false",
    }
    try:
        topics = [
            # The system of record: job events are kept forever.
            NewTopic(
                settings.events_topic,
                num_partitions=settings.pi_jobs_event_partitions,
                replication_factor=settings.pi_jobs_replication_factor,
                topic_configs={"retention.ms": "-1", "retention.bytes": "-1", **durability},
            ),
            # Digit chunks, keyed by chunk index; every copy of a chunk is the same, so compaction
            # keeps each once.
            # One partition, so the last record tells how long the stored prefix is.
            NewTopic(
                settings.digits_topic,
                num_partitions=1,
                replication_factor=settings.pi_jobs_replication_factor,
                topic_configs={
                    "cleanup.policy": "compact",
                    "max.message.bytes": "2097152",
                    **durability,
                },
            ),
        ]
        # Records no service can read, with the reason: kept for a person to look at.
        topics.append(
            NewTopic(
                settings.dead_letters_topic,
                num_partitions=1,
                replication_factor=settings.pi_jobs_replication_factor,
                topic_configs={"retention.ms": "-1", **durability},
            )
        )
        response = await admin.create_topics(topics)
        for name, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise KafkaError(f"cannot create topic {name}: error {code} {rest}")
    finally:
        await admin.close()


async def topic_partitions(kafka: KafkaSettings, topics: list[str]) -> list[TopicPartition]:
    """Every partition of the topics, as the broker describes them now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    ]


async def log_end_offsets(settings: KafkaSettings, topics: list[str]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the offset the next record written there will get."""
    partitions = await topic_partitions(settings, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): end for tp, end in ends.items()}


async def read_to_end(
    settings: KafkaSettings,
    topics: list[str],
    take: Callable[[list[DeliveredRecord]], None],
    max_records: int | None = None,
    **consumer_options: Any,
) -> dict[tuple[str, int], int]:
    """Every record of `topics`, from the start of each partition up to its end as it was when
    called, handed to `take` a batch at a time (in offset order within a partition). Returns
    (topic, partition) -> that end.

    The end offsets are read before anything else, and each partition is read until its
    position reaches its end: records written meanwhile are not waited for nor handed over.
    """
    partitions = await topic_partitions(settings, topics)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **consumer_options,
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        # seek, not seek_to_beginning: that races the reset assign() starts, and may lose.
        for tp, start in (await consumer.beginning_offsets(partitions)).items():
            consumer.seek(tp, start)
        while unread := [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(*unread, timeout_ms=1000, max_records=max_records)
            records = [r for tp, rs in batches.items() for r in rs if r.offset < ends[tp]]
            if records:
                take(records)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): end for tp, end in ends.items()}


def group_consumer(settings: KafkaSettings, role: str) -> AIOKafkaConsumer:
    """A member of the `role` consumer group that commits its offsets itself, once its work is
    done, and starts from the beginning of the log when the group has no offsets yet."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.group_id(role),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # A member that died is noticed after 6 s (the broker's minimum) rather than 10 s.
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
        # Under load, a fetch waits up to 5 ms to bring a batch instead of one record: a small
        # delay when idle, and per-record CPU (here and in the broker) divided several times.
        fetch_min_bytes=16384,
        fetch_max_wait_ms=5,
    )


def durable_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer whose acknowledged writes survive: acks from all in-sync replicas, idempotent."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 0,
        "max_request_size": 2 * 1024 * 1024,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def partition_for_key(key: str, partitions: Collection[int]) -> int:
    """The partition a producer writes `key` to, as aiokafka's default partitioner picks it."""
    ordered = sorted(partitions)
    return int(DefaultPartitioner()(key.encode(), ordered, ordered))


def key_partition(producer: AIOKafkaProducer, topic: str, key: str) -> int | None:
    """The partition the producer will write `key` to; None before it has the topic's metadata
    (the write itself then waits for it)."""
    partitions = producer.client.cluster.partitions_for_topic(topic)
    return partition_for_key(key, partitions) if partitions else None


async def partition_leader_reachable(
    producer: AIOKafkaProducer, topic: str, partition: int, timeout: float = 1.0
) -> bool:
    """Whether the broker leading the partition answers now.

    Checked before a write that a client waits on: when the broker is plainly down, the write is
    refused at once instead of sitting in the producer's buffer, to be sent (and create a job the
    client was told failed) when the broker returns.
    """
    leader = producer.client.cluster.leader_for_partition(TopicPartition(topic, partition))
    if leader is None or leader < 0:
        return False
    try:
        async with asyncio.timeout(timeout):  # no task of its own, unlike wait_for
            return bool(await producer.client.ready(leader))
    except (TimeoutError, KafkaError, OSError):
        return False


async def publish(
    producer: AIOKafkaProducer, topic: str, key: str, event: Event, partition: int | None = None
) -> tuple[int, int]:
    """Publish and wait for the broker's acknowledgement; returns (partition, offset)."""
    metadata = await producer.send_and_wait(
        topic,
        value=encode(event),
        key=key.encode(),
        partition=partition,
        headers=tracing.record_headers(key),
    )
    return metadata.partition, metadata.offset


async def publish_in_order(producer: AIOKafkaProducer, topic: str, events: list[JobEvent]) -> None:
    """Publish job events one after the other and wait once for all the acknowledgements.

    The idempotent producer keeps a partition's records in the order they were sent, retries
    included, so a job's events arrive in order without a round trip each.
    """
    acknowledged = [
        await producer.send(
            topic,
            value=encode(event),
            key=event.job_id.encode(),
            headers=tracing.record_headers(event.job_id),
        )
        for event in events
    ]
    await asyncio.gather(*acknowledged)


async def send_to_dead_letters(
    producer: AIOKafkaProducer,
    settings: KafkaSettings,
    record: DeliveredRecord,
    reason: str,
    service: str,
) -> None:
    """Park a record no service can read, with where it came from and why, then move on."""
    headers = [
        ("source-topic", record.topic.encode()),
        ("source-partition", str(record.partition).encode()),
        ("source-offset", str(record.offset).encode()),
        ("reason", reason[:1000].encode()),
        ("service", service.encode()),
    ]
    await producer.send_and_wait(
        settings.dead_letters_topic, value=record.value, key=record.key, headers=headers
    )
    log.error(
        "unreadable record sent to the dead-letter topic",
        extra={
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "reason": reason[:300],
        },
    )
