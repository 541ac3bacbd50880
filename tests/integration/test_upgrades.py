"""A rolling upgrade that starts with the producers: an event of a version the consumers do not
know yet is neither dead-lettered nor skipped. Each consumer holds that partition at it, says so
on /readyz, and goes on with the other partitions; after a restart it holds at the same place,
where an upgraded consumer would go on."""

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

import services.calculator.__main__ as calculator
import services.projector.__main__ as projector
from deploy.kafka.local_broker import free_port
from services.shared.events import JobRequested
from services.shared.kafka import (
    durable_producer,
    ensure_topics,
    log_end_offsets,
    partition_for_key,
    publish,
)
from services.shared.settings import CalculatorSettings, KafkaSettings, ProjectorSettings
from services.shared.sqlite_view import SqliteView
from tests.in_process_services import running
from tests.support import wait_until_async


def _ids_on_partitions(partitions: int) -> tuple[str, str, str, str]:
    """Job ids as the API keys them: three on one partition (before, future, after), one on
    another. Each job's events all go to its partition, as in the real flow."""
    ids = {name: f"{name}-{n}" for name in ("before", "future", "after") for n in [0]}
    n = 0
    while len({partition_for_key(i, range(partitions)) for i in ids.values()}) > 1:
        n += 1
        ids["future"], ids["after"] = f"future-{n}", f"after-{n}"
    held = partition_for_key(ids["before"], range(partitions))
    elsewhere = next(
        f"elsewhere-{k}"
        for k in range(100)
        if partition_for_key(f"elsewhere-{k}", range(partitions)) != held
    )
    return ids["before"], ids["future"], ids["after"], elsewhere


async def _publish(
    settings: KafkaSettings, before: str, future: str, after: str, other: str
) -> int:
    """Returns the offset of the event from the future."""
    await ensure_topics(settings)
    producer = durable_producer(settings)
    await producer.start()
    try:
        topic = settings.events_topic
        too_new = {"type": "JobRequested", "version": 5, "job_id": future, "num": 5, "lane": 1}
        await publish(producer, topic, before, JobRequested(job_id=before, num=40))
        sent = await producer.send_and_wait(
            topic, json.dumps(too_new).encode(), key=future.encode()
        )
        await publish(producer, topic, after, JobRequested(job_id=after, num=40))
        await publish(producer, topic, other, JobRequested(job_id=other, num=40))
        return int(sent.offset)
    finally:
        await producer.stop()


async def _not_ready_for_v5(*ports: int) -> bool:
    async with httpx.AsyncClient() as client:
        for port in ports:
            try:
                answer = await client.get(f"http://127.0.0.1:{port}/readyz")
            except httpx.HTTPError:
                return False
            if answer.status_code != 503 or "JobRequested v5" not in answer.json()["error"]:
                return False
    return True


async def _committed(settings: KafkaSettings, tp: TopicPartition) -> int | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=settings.group_id("calculator")
    )
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(tp)
        return offset
    finally:
        await consumer.stop()


async def test_an_event_too_new_holds_its_partition_and_nothing_is_lost(
    kafka_settings: KafkaSettings, view_path: Path
) -> None:
    before, future, after, elsewhere = _ids_on_partitions(kafka_settings.pi_jobs_event_partitions)
    held_at = await _publish(kafka_settings, before, future, after, elsewhere)
    held = partition_for_key(future, range(kafka_settings.pi_jobs_event_partitions))
    view = SqliteView(view_path, writer=True)

    def status(job_id: str) -> str | None:
        job = view.get_job(job_id)
        return None if job is None else job.as_seen_with(view.stored_digits()).status

    for attempt in ("first run", "after a restart"):
        calculator_ops, projector_ops = free_port(), free_port()
        loops = (
            calculator.run(
                kafka_settings, CalculatorSettings(pi_jobs_calculator_ops_port=calculator_ops)
            ),
            projector.run(
                kafka_settings, view, ProjectorSettings(pi_jobs_projector_ops_port=projector_ops)
            ),
        )
        async with running(*loops):
            await wait_until_async(
                lambda: _complete(status, elsewhere), 60, f"the other partition ({attempt})"
            )
            await wait_until_async(
                partial(_not_ready_for_v5, calculator_ops, projector_ops),
                30,
                f"both saying what they need ({attempt})",
            )
        # Held: nothing read past the new event, nothing committed past it, nothing parked.
        # (The job before it is in the view as requested; its completion, written after the new
        # event on the same partition, waits there too.)
        assert status(before) == "queued"
        assert view.get_job(future) is None and view.get_job(after) is None
        assert view.positions()[(kafka_settings.events_topic, held)] == held_at
        partition = TopicPartition(kafka_settings.events_topic, held)
        committed = await _committed(kafka_settings, partition)
        assert committed is None or committed <= held_at
        dead = await log_end_offsets(kafka_settings, [kafka_settings.dead_letters_topic])
        assert sum(dead.values()) == 0


async def _complete(status: Callable[[str], str | None], job_id: str) -> bool:
    return status(job_id) == "complete"
