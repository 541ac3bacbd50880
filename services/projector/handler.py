"""Applies a batch of log records to the view: events folded per job, offsets in the same commit."""

import logging
from dataclasses import dataclass

from services.projector.projection import apply_event
from services.shared.events import (
    DigitsStored,
    JobEvent,
    UnreadableEvent,
    decode_digits,
    decode_job_event,
)
from services.shared.view import JobView, ViewStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogRecord:
    topic: str
    partition: int
    offset: int
    value: bytes | None


def project_batch(store: ViewStore, records: list[LogRecord], digits_topic: str) -> None:
    job_events: list[JobEvent] = []
    chunks: list[DigitsStored] = []
    positions: dict[tuple[str, int], int] = {}
    for record in records:
        positions[(record.topic, record.partition)] = record.offset + 1
        try:
            if record.topic == digits_topic:
                chunks.append(decode_digits(record.value))
            else:
                job_events.append(decode_job_event(record.value))
        except UnreadableEvent as error:
            log.error(
                "skipping unreadable record",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "error": str(error)[:500],
                },
            )
    jobs = store.load_jobs(event.job_id for event in job_events)
    changed: dict[str, JobView] = {}
    for event in job_events:
        before = jobs.get(event.job_id)
        after = apply_event(before, event)
        if after is not None and after != before:
            jobs[event.job_id] = changed[event.job_id] = after
            log.info("job is %s", after.status, extra={"job_id": after.job_id, "num": after.num})
    store.commit(changed.values(), chunks, positions)
