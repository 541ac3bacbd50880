"""`make replay`: rebuild the view from offset 0 while the system keeps serving, then switch.

The new view is built beside the current one (SQLite: a file of its own; PostgreSQL: a schema of
its own); when it has caught up with the log, the view is switched to it in one step (SQLite: the
view's path, a symbolic link, is swapped; PostgreSQL: a one-row table names the generation).
Readers follow within half a second and never see a half-built view; the projector notices the
switch and goes on from where the rebuilt view ends. A few seconds later what was replaced is
freed (SQLite: the old file with its -wal and -shm; PostgreSQL: the old schemas), readers having
let go of it by then. The backends' parts are in services/shared/{sqlite,postgres}_view.py.
"""

import asyncio
import logging
import time
from dataclasses import dataclass

from services.projector.handler import LogRecord, decode_batch, project_batch
from services.shared.kafka import read_to_end
from services.shared.logs import configure_logging
from services.shared.records import DeliveredRecord
from services.shared.settings import KafkaSettings, ViewSettings
from services.shared.view import ViewStore
from services.shared.view_stores import open_view

log = logging.getLogger("replay")
# How long the replaced view is left in place after the switch (every reader follows
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
    events = 0

    def fold(records: list[DeliveredRecord]) -> None:
        nonlocal events
        batch = [LogRecord(r.topic, r.partition, r.offset, r.key, r.value) for r in records]
        decoded = decode_batch(batch, kafka.digits_topic)
        if decoded.held:
            newer = next(iter(decoded.held.values()))[1]
            raise SystemExit(
                f"the log holds an event newer than this code ({newer}): "
                "upgrade pi-jobs before replaying"
            )
        project_batch(view, decoded)
        events += len(records)

    await read_to_end(
        kafka,
        [kafka.events_topic, kafka.digits_topic],
        fold,
        max_records=50_000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    return events, time.perf_counter() - started


async def replay(kafka: KafkaSettings, settings: ViewSettings) -> Rebuilt:
    """Rebuilds the view of `settings` in a new generation beside it, then switches to it."""
    live = open_view(settings.view_url)
    try:
        new = live.new_generation()
        try:
            events, seconds = await rebuild(kafka, new.view)
            new.switch_to()
        finally:
            new.view.close()
        # Readers and the projector follow within a second or so.
        await asyncio.sleep(_FOLLOW_SECONDS)
        new.retire_replaced()
    finally:
        live.close()
    return Rebuilt(new.name, events, seconds)


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
