"""Calculator: a consumer group member that turns each JobRequested into digits and an outcome.

Jobs run side by side (see runner.py); a request's offset is committed only once its job, and
every job before it on the partition, has its outcome acknowledged by the broker. A crash
re-delivers unfinished jobs instead of losing them.
"""

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import KafkaError

from services.calculator.compute import compute_decimals
from services.calculator.handler import CalculatorDeps
from services.calculator.offsets import OffsetTracker
from services.calculator.progress import CostModel
from services.calculator.runner import JobRunner
from services.calculator.stored_digits import StoredDigits
from services.shared.events import (
    DigitsStored,
    JobCancelled,
    JobEvent,
    JobRequested,
    UnreadableEvent,
    decode_job_event,
)
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
from services.shared.metrics import track_consumer_lag
from services.shared.ops_server import serve_ops
from services.shared.runtime import run_until_stopped
from services.shared.settings import CalculatorSettings, KafkaSettings

log = logging.getLogger("calculator")


def _deps(kafka: KafkaSettings, producer: AIOKafkaProducer, stored: StoredDigits) -> CalculatorDeps:
    async def publish_job_events(*events: JobEvent) -> None:
        await publish_in_order(producer, kafka.events_topic, list(events))

    async def publish_digits(chunk: DigitsStored) -> None:
        await publish(producer, kafka.digits_topic, f"chunk-{chunk.chunk_index}", chunk)
        stored.note_published(chunk.end)

    return CalculatorDeps(
        publish_job_events=publish_job_events,
        publish_digits=publish_digits,
        stored_digits=stored.at_least,
        compute_decimals=compute_decimals,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        cost_model=CostModel(),
    )


class _Committer(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits each partition's finished prefix; hands unfinished work over on a rebalance."""

    def __init__(self, consumer: AIOKafkaConsumer, runner: JobRunner) -> None:
        self.offsets = OffsetTracker()
        self._consumer = consumer
        self._runner = runner
        self._committed: dict[TopicPartition, int] = {}
        self._changed = asyncio.Event()
        self._closed = False

    def close(self) -> None:
        """From now on nothing is committed: jobs cut short by a shutdown are re-delivered."""
        self._closed = True

    def finished(self, tp: TopicPartition, offset: int) -> None:
        if not self._closed:
            self.offsets.end(tp, offset)
            self._changed.set()

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        if self._closed:
            return
        due = {
            tp: offset
            for tp, offset in self.offsets.committable().items()
            if isinstance(tp, TopicPartition)
            and (only is None or tp in only)
            and self._committed.get(tp) != offset
        }
        if due:
            await self._consumer.commit(due)
            self._committed.update(due)

    async def run(self, interval_seconds: float = 0.5) -> None:
        """Commit what is finished, at most every `interval_seconds`: a burst of jobs costs a
        commit or two, and a crash re-delivers at most that much finished work (harmless)."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self.commit()
            except KafkaError as error:
                # Not committed means re-delivered later: safe, only some work is repeated.
                log.warning("commit failed", extra={"error": repr(error)})
                self._changed.set()
            await asyncio.sleep(interval_seconds)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        with contextlib.suppress(KafkaError):
            await self.commit(only=revoked)
        for tp in revoked:
            self.offsets.forget(tp)
            self._runner.cancel_partition(tp)
            self._committed.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})


async def run(kafka: KafkaSettings, settings: CalculatorSettings) -> None:
    await connect_with_retry(lambda: ensure_topics(kafka), "calculator")
    producer = durable_producer(kafka)
    await connect_with_retry(producer.start, "calculator")
    consumer = group_consumer(kafka, "calculator")
    await connect_with_retry(consumer.start, "calculator")
    stored = StoredDigits(kafka)
    deps = _deps(kafka, producer, stored)
    runner = JobRunner(deps, settings.pi_jobs_large_job_digits, settings.pi_jobs_max_jobs_in_flight)
    committer = _Committer(consumer, runner)
    consumer.subscribe([kafka.events_topic], listener=committer)
    committing = asyncio.create_task(committer.run())
    group = kafka.group_id("calculator")
    background = [
        committing,
        asyncio.create_task(track_consumer_lag(consumer, group)),
        asyncio.create_task(
            serve_ops(
                "calculator",
                settings.pi_jobs_calculator_ops_host,
                settings.pi_jobs_calculator_ops_port,
                lambda: [] if consumer.assignment() else ["no partitions assigned yet"],
            )
        ),
    ]
    log.info("calculator started", extra={"worker": deps.worker})
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for tp, records in batches.items():
                await _dispatch(records, tp, kafka, producer, runner, committer, stored.known)
    finally:
        committer.close()
        for task in background:
            task.cancel()
        await runner.stop()
        await consumer.stop()
        await producer.stop()


async def _dispatch(
    records: list[ConsumerRecord[bytes, bytes]],
    tp: TopicPartition,
    kafka: KafkaSettings,
    producer: AIOKafkaProducer,
    runner: JobRunner,
    committer: _Committer,
    known_stored: int,
) -> None:
    """Start the partition's new jobs; those the stored digits answer are completed together."""
    served: list[JobRequested] = []
    served_offsets: list[int] = []
    for record in records:
        committer.offsets.begin(tp, record.offset)
        try:
            event = decode_job_event(record.value)
        except UnreadableEvent as error:
            await send_to_dead_letters(producer, kafka, record, str(error), "calculator")
            event = None
        if isinstance(event, JobRequested) and event.num <= known_stored:
            served.append(event)
            served_offsets.append(record.offset)
            continue
        if isinstance(event, JobRequested):
            await runner.start(event, tp, _finisher(committer, tp, [record.offset]))
            continue
        if isinstance(event, JobCancelled) and runner.cancel_job(event.job_id):
            log.info("job cancelled", extra={"job_id": event.job_id})
        committer.finished(tp, record.offset)
    if served:
        await runner.serve_from_stored(served, tp, _finisher(committer, tp, served_offsets))


def _finisher(committer: _Committer, tp: TopicPartition, offsets: list[int]) -> Callable[[], None]:
    def finished() -> None:
        for offset in offsets:
            committer.finished(tp, offset)

    return finished


def main() -> None:
    configure_logging("calculator")
    run_until_stopped(run(KafkaSettings(), CalculatorSettings()))


if __name__ == "__main__":
    main()
