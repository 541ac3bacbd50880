"""The calculator and projector loops against the real broker, run in this process."""

from functools import partial
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from services.calculator.stored_digits import StoredDigits
from services.shared.events import JobRequested, decode_digits
from services.shared.kafka import durable_producer, ensure_topics, publish
from services.shared.settings import KafkaSettings
from services.shared.sqlite_view import SqliteView
from tests.in_process_services import calculator_and_projector
from tests.support import reference_pi_text, wait_until_async


async def request(settings: KafkaSettings, *jobs: tuple[str, int]) -> None:
    await ensure_topics(settings)
    producer = durable_producer(settings)
    await producer.start()
    try:
        for job_id, num in jobs:
            await publish(
                producer, settings.events_topic, job_id, JobRequested(job_id=job_id, num=num)
            )
    finally:
        await producer.stop()


async def digits_in_log(settings: KafkaSettings) -> str:
    consumer = AIOKafkaConsumer(
        settings.digits_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=500,
    )
    await consumer.start()
    chunks: dict[int, str] = {}
    try:
        batch = await consumer.getmany(timeout_ms=2000)
        for records in batch.values():
            for record in records:
                chunk = decode_digits(record.value)
                assert chunks.setdefault(chunk.chunk_index, chunk.digits) == chunk.digits
    finally:
        await consumer.stop()
    return "".join(chunks[i] for i in sorted(chunks))


async def test_requested_jobs_are_computed_once_and_projected(
    kafka_settings: KafkaSettings, view_path: Path
) -> None:
    view = SqliteView(view_path, writer=True)
    async with calculator_and_projector(kafka_settings, view):
        await request(kafka_settings, ("small", 12), ("big", 150_000))
        for job_id in ("small", "big"):
            await wait_until_async(partial(_status_is, view, job_id, "complete"), 60, job_id)
        # Partitions are consumed in no fixed order: ask for the smaller one once "big" is done.
        await request(kafka_settings, ("smaller", 100))
        await wait_until_async(
            lambda: _status_is(view, "smaller", "complete"), 60, "smaller complete"
        )
    # Computations are rounded up to whole chunks of 100,000 digits.
    assert view.stored_digits() == 200_000
    assert "3." + "".join(view.iter_digits(200_000)) == reference_pi_text(200_000)
    smaller = view.get_job("smaller")
    assert smaller is not None and smaller.digits_source == "stored"
    # The log holds the largest job's digits once, not the sum of all jobs.
    assert "3." + await digits_in_log(kafka_settings) == reference_pi_text(200_000)
    assert await StoredDigits(kafka_settings).at_least(1) == 200_000


async def test_the_projector_resumes_where_its_view_left_off(
    kafka_settings: KafkaSettings, view_path: Path
) -> None:
    view = SqliteView(view_path, writer=True)
    await request(kafka_settings, ("first", 10))
    async with calculator_and_projector(kafka_settings, view):
        await wait_until_async(
            lambda: _status_is(view, "first", "complete"), 60, "first job complete"
        )
    positions_before = view.positions()
    await request(kafka_settings, ("second", 20))
    async with calculator_and_projector(kafka_settings, view):
        await wait_until_async(
            lambda: _status_is(view, "second", "complete"), 60, "second job complete"
        )
    first = view.get_job("first")
    assert first is not None and first.status == "complete"
    assert sum(view.positions().values()) > sum(positions_before.values())


async def _status_is(view: SqliteView, job_id: str, status: str) -> bool:
    job = view.get_job(job_id)
    return job is not None and job.as_seen_with(view.stored_digits()).status == status
