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
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from services.calculator.checkpoints import CheckpointConfig, discard_computation
from services.calculator.committer import Committer
from services.calculator.compute import compute_decimals
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
        await publish(producer, kafka.digits_topic, f"chunk-{chunk.chunk_index}", chunk)
        stored.note_published(chunk.end)

    return CalculatorDeps(
        publish_job_events=publish_job_events,
        publish_digits=publish_digits,
        stored_digits=stored.at_least,
        compute_decimals=functools.partial(compute_decimals, checkpoints=checkpoints),
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


async def _dispatch(
    records: list[ConsumerRecord[bytes, bytes]], tp: TopicPartition, work: _Consuming
) -> None:
    """Start the partition's new jobs; those the stored digits answer are completed together."""
    known_stored = work.stored.known
    served: list[JobRequested] = []
    served_offsets: list[int] = []
    served_traces: list[tuple[str, tracing.ReceivedHeaders]] = []
    for record in records:
        try:
            event = decode_job_event(record.value)
        except NewerEvent as newer:
            work.held.hold(tp, record.offset, newer)  # nothing from here on, not even committed
            break
        except UnreadableEvent as error:
            await send_to_dead_letters(work.producer, work.kafka, record, str(error), "calculator")
            event = None
        work.committer.offsets.begin(tp, record.offset)
        if isinstance(event, JobRequested) and event.num <= known_stored:
            served.append(event)
            served_offsets.append(record.offset)
            served_traces.append((event.job_id, record.headers))
            continue
        if isinstance(event, JobRequested):
            # The job's task continues the trace its request carried (it copies the context).
            with tracing.continuing([(event.job_id, record.headers)]):
                await work.runner.start(event, tp, _finisher(work.committer, tp, [record.offset]))
            continue
        if isinstance(event, JobCancelled) and work.runner.cancel_job(event.job_id):
            log.info("job cancelled", extra={"job_id": event.job_id})
        work.committer.finished(tp, record.offset)
    if served:
        with tracing.continuing(served_traces):
            await work.runner.serve_from_stored(
                served, tp, _finisher(work.committer, tp, served_offsets)
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
