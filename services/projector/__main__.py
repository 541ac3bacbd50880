"""Projector: consumes every event and keeps the status view and the stored digits up to date."""

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from services.projector.handler import LogRecord, decode_batch, project_batch
from services.shared import tracing
from services.shared.consumer_lag import track_consumer_lag
from services.shared.held_partitions import HeldPartitions
from services.shared.kafka import (
    connect_with_retry,
    durable_producer,
    ensure_topics,
    group_consumer,
    partition_names,
    send_to_dead_letters,
)
from services.shared.logs import configure_logging
from services.shared.ops_server import serve_ops
from services.shared.runtime import run_until_stopped
from services.shared.settings import KafkaSettings, ProjectorSettings, ViewSettings
from services.shared.view import ViewStore
from services.shared.view_stores import open_view

log = logging.getLogger("projector")

_MONITORING_COMMIT_SECONDS = 2.0


class _ResumeFromView(ConsumerRebalanceListener):  # type: ignore[misc]
    """The view, not Kafka's committed offsets, says where to resume: they commit together."""

    def __init__(self, consumer: AIOKafkaConsumer, store: ViewStore, held: HeldPartitions) -> None:
        self._consumer = consumer
        self._store = store
        self._held = held

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._held.forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        _seek_to_view(self._consumer, self._store, assigned)
        log.info("partitions assigned", extra={"partitions": partition_names(assigned)})


def _seek_to_view(
    consumer: AIOKafkaConsumer, store: ViewStore, partitions: set[TopicPartition] | None = None
) -> None:
    positions = store.positions()
    for tp in partitions if partitions is not None else consumer.assignment():
        consumer.seek(tp, positions.get((tp.topic, tp.partition), 0))


async def run(
    kafka: KafkaSettings, store: ViewStore, settings: ProjectorSettings | None = None
) -> None:
    settings = settings or ProjectorSettings()
    await connect_with_retry(lambda: ensure_topics(kafka), "projector")
    consumer = group_consumer(kafka, "projector")
    await connect_with_retry(consumer.start, "projector")
    held = HeldPartitions(consumer, "projector")
    consumer.subscribe(
        [kafka.events_topic, kafka.digits_topic], listener=_ResumeFromView(consumer, store, held)
    )
    producer = durable_producer(kafka)
    await connect_with_retry(producer.start, "projector")

    def problems() -> list[str]:
        return held.problems() + ([] if consumer.assignment() else ["no partitions assigned yet"])

    log.info("projector started")
    try:
        # One failing task ends them all, and the process (non-zero): its supervisor starts it
        # afresh rather than it running on half-broken.
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(_project(kafka, consumer, producer, store, held))
            tasks.create_task(track_consumer_lag(consumer, kafka.group_id("projector")))
            ops = settings.pi_jobs_projector_ops_host, settings.pi_jobs_projector_ops_port
            tasks.create_task(serve_ops("projector", *ops, problems))
    finally:
        await consumer.stop()
        await producer.stop()


async def _project(
    kafka: KafkaSettings,
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    store: ViewStore,
    held: HeldPartitions,
) -> None:
    generation = store.generation()
    loop = asyncio.get_running_loop()
    next_commit_at = 0.0
    read_up_to: dict[TopicPartition, int] = {}
    while True:
        batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
        if store.generation() != generation:
            # `make replay` switched the view to a rebuilt one: go on from where it ends.
            generation = store.generation()
            _seek_to_view(consumer, store)
            log.info("switched to a rebuilt view", extra={"view": generation})
            continue
        started_ns = time.time_ns()
        records = [
            LogRecord(r.topic, r.partition, r.offset, r.key, r.value)
            for batch in batches.values()
            for r in batch
        ]
        if not records:
            continue
        decoded = decode_batch(records, kafka.digits_topic)
        # Parked before the view moves past them: a poison record is never silently lost.
        for record, reason in decoded.unreadable:
            await send_to_dead_letters(producer, kafka, record, reason, "projector")
        # A SQLite commit is local and quick: made inline; PostgreSQL's from a thread.
        if store.reads_wait_on_network:
            await asyncio.to_thread(project_batch, store, decoded)
        else:
            project_batch(store, decoded)
        # Each record written that carries a job's trace: a span of this batch's write, in it.
        written = (r for rs in batches.values() for r in rs if decoded.read_past(r))
        tracing.applied("apply", written, started_ns)
        for (topic, partition), (offset, newer) in decoded.held.items():
            held.hold(TopicPartition(topic, partition), offset, newer)
        read_up_to.update({TopicPartition(*tp): at for tp, at in decoded.positions.items()})
        # Kafka's copy of the offsets is only for lag monitoring (the view holds the truth):
        # a commit every few seconds, not one a batch.
        if read_up_to and loop.time() >= next_commit_at:
            next_commit_at = loop.time() + _MONITORING_COMMIT_SECONDS
            with contextlib.suppress(KafkaError):
                await consumer.commit(read_up_to)


def main() -> None:
    configure_logging("projector")
    tracing.configure("projector")
    store = open_view(ViewSettings().view_url, writer=True)
    run_until_stopped(run(KafkaSettings(), store))


if __name__ == "__main__":
    main()
