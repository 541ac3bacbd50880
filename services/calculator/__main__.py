"""Calculator: a consumer group member that turns each JobRequested into digits and an outcome.

Jobs run side by side (see runner.py); a request's offset is committed only once its job, and
every job before it on the partition, has its outcome acknowledged by the broker. A crash
re-delivers unfinished jobs instead of losing them.
"""

import asyncio
import functools
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from services.calculator.checkpoints import CheckpointConfig, discard_computation
from services.calculator.committer import Committer
from services.calculator.compute import compute_digits
from services.calculator.handler import CalculatorDeps
from services.calculator.progress import CostModel
from services.calculator.runner import JobRunner
from services.calculator.stored_digits import StoredDigits
from services.shared import tracing
from services.shared.consumer_lag import track_consumer_lag
from services.shared.events import (
    DigitsStored,
    JobCancelled,
    JobEvent,
    JobRequested,
    NewerEvent,
    UnreadableEvent,
    decode_job_event,
)
from services.shared.held_partitions import HeldPartitions
from services.shared.kafka import (
    connect_with_retry,
    durable_producer,
    ensure_topics,
    group_consumer,
    publish,
    publish_in_order,
    send_to_dead_letters,
)
from services.shared.logs import configure_logging
from services.shared.ops_server import serve_ops
from services.shared.runtime import run_until_stopped
from services.shared.settings import CalculatorSettings, KafkaSettings

log = logging.getLogger("calculator")

_E = TypeVar("_E", bound=JobEvent)


def _checkpoints(settings: CalculatorSettings) -> CheckpointConfig:
    return CheckpointConfig(
        settings.pi_jobs_checkpoint_dir,
        settings.pi_jobs_checkpoint_interval_seconds,
        settings.pi_jobs_checkpoint_max_bytes,
        keep_series=settings.pi_jobs_keep_series_state,
    )


def _deps(
    kafka: KafkaSettings,
    producer: AIOKafkaProducer,
    stored: StoredDigits,
    checkpoints: CheckpointConfig,
) -> CalculatorDeps:
    async def publish_job_events(*events: JobEvent) -> None:
        await publish_in_order(producer, kafka.events_topic, list(events))

    async def publish_digits(chunk: DigitsStored) -> None:
        await publish(producer, kafka.digits_topic, chunk.record_key, chunk)
        stored.note_published(chunk)

    return CalculatorDeps(
        publish_job_events=publish_job_events,
        publish_digits=publish_digits,
        stored_digits=stored.at_least,
        compute_digits=functools.partial(compute_digits, checkpoints=checkpoints),
        discard_checkpoints=functools.partial(discard_computation, checkpoints.directory),
        worker=f"{socket.gethostname()}:{os.getpid()}",
        cost_model=CostModel(),
    )


@dataclass(frozen=True)
class _Consuming:
    """What the consume loop works with."""

    kafka: KafkaSettings
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    runner: JobRunner
    committer: Committer
    held: HeldPartitions
    stored: StoredDigits


async def run(kafka: KafkaSettings, settings: CalculatorSettings) -> None:
    await connect_with_retry(lambda: ensure_topics(kafka), "calculator")
    producer = durable_producer(kafka)
    await connect_with_retry(producer.start, "calculator")
    consumer = group_consumer(kafka, "calculator")
    await connect_with_retry(consumer.start, "calculator")
    stored = StoredDigits(kafka)
    deps = _deps(kafka, producer, stored, _checkpoints(settings))
    runner = JobRunner(deps, settings.pi_jobs_large_job_digits, settings.pi_jobs_max_jobs_in_flight)
    held = HeldPartitions(consumer, "calculator")

    def revoked(tp: TopicPartition) -> None:
        runner.cancel_partition(tp)
        held.forget({tp})

    committer = Committer(consumer, on_revoked=revoked)
    consumer.subscribe([kafka.events_topic], listener=committer)
    work = _Consuming(kafka, consumer, producer, runner, committer, held, stored)

    def problems() -> list[str]:
        return held.problems() + ([] if consumer.assignment() else ["no partitions assigned yet"])

    log.info("calculator started", extra={"worker": deps.worker})
    try:
        # One failing task ends them all, and the process (non-zero): its supervisor starts it
        # afresh rather than it running on half-broken.
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(_consume(work))
            tasks.create_task(committer.run())
            tasks.create_task(track_consumer_lag(consumer, kafka.group_id("calculator")))
            ops = settings.pi_jobs_calculator_ops_host, settings.pi_jobs_calculator_ops_port
            tasks.create_task(serve_ops("calculator", *ops, problems))
    finally:
        committer.close()
        await runner.stop()
        await consumer.stop()
        await producer.stop()


async def _consume(work: _Consuming) -> None:
    while True:
        batches = await work.consumer.getmany(timeout_ms=1000, max_records=500)
        for tp, records in batches.items():
            await _dispatch(records, tp, work)


@dataclass
class _Batch:
    """One partition's records from one poll: the jobs the stored digits answer are gathered
    here and completed together once the batch is read."""

    tp: TopicPartition
    known_stored: Mapping[int, int]  # radix -> digits stored, as known when the batch began
    served: list[JobRequested] = field(default_factory=list)
    served_offsets: list[int] = field(default_factory=list)
    served_traces: list[tuple[str, tracing.ReceivedHeaders]] = field(default_factory=list)


# Handles one event of its type; True: the record is done with (its offset may be committed).
_Handler = Callable[[_E, ConsumerRecord[bytes, bytes], _Batch, _Consuming], Awaitable[bool]]


async def _job_requested(
    event: JobRequested, record: ConsumerRecord[bytes, bytes], batch: _Batch, work: _Consuming
) -> bool:
    if event.num <= batch.known_stored[event.radix]:
        batch.served.append(event)
        batch.served_offsets.append(record.offset)
        batch.served_traces.append((event.job_id, record.headers))
        return False
    # The job's task continues the trace its request carried (it copies the context).
    with tracing.continuing([(event.job_id, record.headers)]):
        await work.runner.start(
            event, batch.tp, _finisher(work.committer, batch.tp, [record.offset])
        )
    return False


async def _job_cancelled(
    event: JobCancelled, record: ConsumerRecord[bytes, bytes], batch: _Batch, work: _Consuming
) -> bool:
    if work.runner.cancel_job(event.job_id):
        log.info("job cancelled", extra={"job_id": event.job_id})
    return True


# The events the calculator acts on; it reads past every other type.
EVENT_HANDLERS: Mapping[type[JobEvent], _Handler[Any]] = {
    JobRequested: _job_requested,
    JobCancelled: _job_cancelled,
}


async def _dispatch(
    records: list[ConsumerRecord[bytes, bytes]], tp: TopicPartition, work: _Consuming
) -> None:
    """Start the partition's new jobs; those the stored digits answer are completed together."""
    batch = _Batch(tp, {radix: work.stored.known(radix) for radix in (10, 16)})
    for record in records:
        try:
            event: JobEvent | None = decode_job_event(record.value)
        except NewerEvent as newer:
            work.held.hold(tp, record.offset, newer)  # nothing from here on, not even committed
            break
        except UnreadableEvent as error:
            await send_to_dead_letters(work.producer, work.kafka, record, str(error), "calculator")
            event = None
        work.committer.offsets.begin(tp, record.offset)
        handler = None if event is None else EVENT_HANDLERS.get(type(event))
        if handler is None or await handler(event, record, batch, work):
            work.committer.finished(tp, record.offset)
    if batch.served:
        with tracing.continuing(batch.served_traces):
            await work.runner.serve_from_stored(
                batch.served, tp, _finisher(work.committer, tp, batch.served_offsets)
            )


def _finisher(committer: Committer, tp: TopicPartition, offsets: list[int]) -> Callable[[], None]:
    def finished() -> None:
        for offset in offsets:
            committer.finished(tp, offset)

    return finished


def main() -> None:
    configure_logging("calculator")
    tracing.configure("calculator")
    run_until_stopped(run(KafkaSettings(), CalculatorSettings()))


if __name__ == "__main__":
    main()
