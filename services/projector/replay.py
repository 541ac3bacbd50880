"""`make replay`: rebuild the view from offset 0 while the system keeps serving, then switch.

The new view is built beside the current one (SQLite: a file of its own; PostgreSQL: a schema of
its own); when it has caught up with the log, the view is switched to it in one step (SQLite: the
view's path, a symbolic link, is swapped; PostgreSQL: a one-row table names the generation).
Readers follow within half a second and never see a half-built view; the projector notices the
switch and goes on from where the rebuilt view ends. A few seconds later the replaced SQLite file
is removed with its -wal and -shm (readers have closed their connections to it by then).
"""

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.projector.handler import LogRecord, decode_batch, project_batch
from services.shared.kafka import topic_partitions
from services.shared.logs import configure_logging
from services.shared.postgres_view import PostgresView, switch_generation
from services.shared.settings import KafkaSettings, ViewSettings
from services.shared.sqlite_view import SqliteView
from services.shared.view import ViewStore

log = logging.getLogger("replay")
# How long the replaced view is left in place after the switch (every reader follows the link
# within half a second; the projector at its next batch, within about a second).
_FOLLOW_SECONDS = 3.0


@dataclass(frozen=True)
class Rebuilt:
    generation: str
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def rebuild(kafka: KafkaSettings, view: ViewStore) -> tuple[int, float]:
    """Every record of the events and digits topics, from offset 0, folded into `view` (a new,
    empty one); returns how many records and how many seconds."""
    started = time.perf_counter()
    partitions = await topic_partitions(kafka, [kafka.events_topic, kafka.digits_topic])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # where "beginning" is, whatever aiokafka resets to
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    events = 0
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        while await _behind(consumer, end):
            batches = await consumer.getmany(timeout_ms=1000, max_records=50_000)
            records = [
                LogRecord(r.topic, r.partition, r.offset, r.key, r.value)
                for batch in batches.values()
                for r in batch
            ]
            if records:
                decoded = decode_batch(records, kafka.digits_topic)
                if decoded.held:
                    newer = next(iter(decoded.held.values()))[1]
                    raise SystemExit(
                        f"the log holds an event newer than this code ({newer}): "
                        "upgrade pi-jobs before replaying"
                    )
                project_batch(view, decoded)
                events += len(records)
    finally:
        await consumer.stop()
    return events, time.perf_counter() - started


async def _behind(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, end_offset in end.items():
        if await consumer.position(tp) < end_offset:
            return True
    return False


def switch_to(link: Path, file: Path) -> None:
    """Point `link` at `file` in one step (rename is atomic)."""
    staged = link.with_name(link.name + ".switching")
    staged.unlink(missing_ok=True)
    staged.symlink_to(file.name)
    os.replace(staged, link)


def remove_replaced(link: Path, file: Path) -> None:
    """Every view file but `file`, with its -wal and -shm: the generations before it, and what
    a view at the link's own path (before the first replay) left. Call it once readers have
    followed the link: they close what they had open of these files."""
    for old in [*link.parent.glob(f"{link.stem}-*.sqlite3*"), *link.parent.glob(f"{link.name}-*")]:
        if old.name.removesuffix("-wal").removesuffix("-shm") != file.name:
            old.unlink(missing_ok=True)


def new_generation_file(link: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return link.with_name(f"{link.stem}-{stamp}.sqlite3")


async def replay_sqlite(kafka: KafkaSettings, link: Path) -> Rebuilt:
    file = new_generation_file(link)
    view = SqliteView(file, writer=True, durable=False)
    events, seconds = await rebuild(kafka, view)
    view.flush_to_disk()
    view.close()
    switch_to(link, file)
    # Readers and the projector follow the link within a second or so.
    await asyncio.sleep(_FOLLOW_SECONDS)
    remove_replaced(link, file)
    return Rebuilt(file.name, events, seconds)


async def replay_postgres(kafka: KafkaSettings, url: str) -> Rebuilt:
    generation = "pi_view_" + datetime.now(UTC).strftime("%Y%m%dt%H%M%S%f")
    view = PostgresView(url, writer=True, generation=generation)
    try:
        events, seconds = await rebuild(kafka, view)
    finally:
        view.close()
    switch_generation(url, generation)
    return Rebuilt(generation, events, seconds)


async def replay(kafka: KafkaSettings, settings: ViewSettings) -> Rebuilt:
    url = settings.view_url
    if url.startswith(("postgresql://", "postgres://")):
        return await replay_postgres(kafka, url)
    return await replay_sqlite(kafka, Path(url.removeprefix("sqlite://")))


def main() -> None:
    configure_logging("replay")
    # A line per job and status is right for the live projector, not for a whole log at once.
    logging.getLogger("services.projector.handler").setLevel(logging.WARNING)
    rebuilt = asyncio.run(replay(KafkaSettings(), ViewSettings()))
    print(
        f"replayed {rebuilt.events} records in {rebuilt.seconds:.1f} s "
        f"({rebuilt.events_per_second:,.0f}/s); the view is now {rebuilt.generation}",
        flush=True,
    )


if __name__ == "__main__":
    main()
