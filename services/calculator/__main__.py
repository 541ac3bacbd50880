"""Calculator: a consumer group member that turns each JobRequested into digits and an outcome.

The consumer offset of a request is committed only after the job's outcome is acknowledged by
the broker, so a crash re-delivers the job instead of losing it.
"""

import logging
import os
import socket

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.calculator.compute import compute_decimals
from services.calculator.handler import CalculatorDeps, handle_job_requested
from services.calculator.stored_digits import StoredDigits
from services.shared.events import (
    DigitsStored,
    JobEvent,
    JobRequested,
    UnreadableEvent,
    decode_job_event,
)
from services.shared.kafka import connect_with_retry, durable_producer, ensure_topics, publish
from services.shared.logs import configure_logging
from services.shared.runtime import run_until_stopped
from services.shared.settings import KafkaSettings

log = logging.getLogger("calculator")


def _deps(kafka: KafkaSettings, producer: AIOKafkaProducer, stored: StoredDigits) -> CalculatorDeps:
    async def publish_job_event(event: JobEvent) -> None:
        await publish(producer, kafka.events_topic, event.job_id, event)

    async def publish_digits(chunk: DigitsStored) -> None:
        await publish(producer, kafka.digits_topic, f"chunk-{chunk.chunk_index}", chunk)
        stored.note_published(chunk.end)

    return CalculatorDeps(
        publish_job_event=publish_job_event,
        publish_digits=publish_digits,
        stored_digits=stored.at_least,
        compute_decimals=compute_decimals,
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )


async def run(kafka: KafkaSettings) -> None:
    await connect_with_retry(lambda: ensure_topics(kafka), "calculator")
    producer = durable_producer(kafka)
    await connect_with_retry(producer.start, "calculator")
    consumer = AIOKafkaConsumer(
        kafka.events_topic,
        bootstrap_servers=kafka.kafka_bootstrap_servers,
        group_id=kafka.group_id("calculator"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # A 100,000,000-digit job keeps one record in hand for minutes.
        max_poll_interval_ms=3_600_000,
        max_poll_records=1,
    )
    await connect_with_retry(consumer.start, "calculator")
    deps = _deps(kafka, producer, StoredDigits(kafka))
    log.info("calculator started", extra={"worker": deps.worker})
    try:
        async for record in consumer:
            try:
                event = decode_job_event(record.value)
            except UnreadableEvent as error:
                log.error(
                    "skipping unreadable record",
                    extra={"offset": record.offset, "error": str(error)[:500]},
                )
                event = None
            if isinstance(event, JobRequested):
                await handle_job_requested(event, deps)
            tp = TopicPartition(record.topic, record.partition)
            await consumer.commit({tp: record.offset + 1})
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    configure_logging("calculator")
    run_until_stopped(run(KafkaSettings()))


if __name__ == "__main__":
    main()
