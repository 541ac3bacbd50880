"""Replay speed: how fast `make replay` folds a generated log into a new view.

    .venv/bin/python bench/bench_replay.py [--events 1000000]

Starts its own broker, writes `--events` job events (a quarter of them JobRequested, then
JobStarted, JobProgressed and JobCompleted for each job), then rebuilds a view from offset 0.
"""

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from deploy.kafka.local_broker import LocalBroker
from services.projector.replay import rebuild
from services.shared.events import (
    JobCompleted,
    JobEvent,
    JobProgressed,
    JobRequested,
    JobStarted,
    encode,
)
from services.shared.job_ids import new_job_id
from services.shared.kafka import durable_producer, ensure_topics
from services.shared.settings import KafkaSettings
from services.shared.sqlite_view import SqliteView


def job_events(job_id: str) -> list[JobEvent]:
    return [
        JobRequested(job_id=job_id, num=1000),
        JobStarted(job_id=job_id, worker="bench:1"),
        JobProgressed(job_id=job_id, progress=0.5, eta_seconds=1.0),
        JobCompleted(job_id=job_id, num=1000, digits_source="stored", compute_seconds=0.0),
    ]


async def write_log(kafka: KafkaSettings, events: int) -> float:
    await ensure_topics(kafka)
    producer = durable_producer(kafka, linger_ms=20, max_batch_size=1024 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for _ in range(events // 4):
            job_id = new_job_id()
            for event in job_events(job_id):
                pending.append(
                    await producer.send(kafka.events_topic, encode(event), job_id.encode())
                )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def main(events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = LocalBroker.on_free_ports(Path(tmp) / "kafka")
        with broker:
            kafka = KafkaSettings(kafka_bootstrap_servers=broker.bootstrap_servers)
            written = await write_log(kafka, events)
            print(f"wrote {events:,} events in {written:.1f} s")
            view = SqliteView(Path(tmp) / "view-rebuilt.sqlite3", writer=True, durable=False)
            replayed, seconds = await rebuild(kafka, view)
            view.flush_to_disk()
            print(
                f"replay: {replayed:,} events in {seconds:.1f} s = "
                f"{replayed / seconds:,.0f} events/s (goal: 50,000/s)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args().events))
