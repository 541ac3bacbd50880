"""Poison records go to the dead-letter topic with a reason; the consumers move on."""

from pathlib import Path

from aiokafka import AIOKafkaConsumer

from services.shared.events import JobRequested, encode
from services.shared.kafka import durable_producer, ensure_topics
from services.shared.settings import KafkaSettings
from services.shared.sqlite_view import SqliteView
from tests.in_process_services import calculator_and_projector
from tests.support import wait_until_async

POISON = [
    b"{not json",
    b'{"type": "JobRequested", "version": 2, "job_id": "p1", "num": -5}',
    b'{"type": "JobExploded", "version": 1, "job_id": "p2"}',
]


async def dead_letters(settings: KafkaSettings, wanted: int) -> list[dict[str, bytes]]:
    consumer = AIOKafkaConsumer(
        settings.dead_letters_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[dict[str, bytes]] = []
    try:

        async def enough() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    found.append({k: v for k, v in record.headers} | {"value": record.value})
            return len(found) >= wanted

        await wait_until_async(enough, 60, f"{wanted} dead letters")
    finally:
        await consumer.stop()
    return found


async def test_poison_records_are_parked_and_good_jobs_still_complete(
    kafka_settings: KafkaSettings, view_path: Path
) -> None:
    await ensure_topics(kafka_settings)
    producer = durable_producer(kafka_settings)
    await producer.start()
    try:
        # A poison record first on the partition of a good job: it must not block it.
        for value in POISON:
            await producer.send_and_wait(
                kafka_settings.events_topic, value, key=b"good", partition=0
            )
        good = JobRequested(job_id="good", num=30)
        await producer.send_and_wait(
            kafka_settings.events_topic, encode(good), key=b"good", partition=0
        )
    finally:
        await producer.stop()

    view = SqliteView(view_path, writer=True)
    async with calculator_and_projector(kafka_settings, view):

        async def good_complete() -> bool:
            job = view.get_job("good")
            return job is not None and job.as_seen_with(view.stored_digits()).status == "complete"

        await wait_until_async(good_complete, 60, "the good job to complete")
        letters = await dead_letters(kafka_settings, wanted=2 * len(POISON))
    # Each consumer that could not read a record parks it, saying who, where and why.
    assert {(letter["service"], letter["value"]) for letter in letters} == {
        (service, value) for service in (b"calculator", b"projector") for value in POISON
    }
    assert all(letter["reason"] and letter["source-topic"] for letter in letters)
    assert {letter["source-offset"] for letter in letters} == {b"0", b"1", b"2"}
