"""Applies a batch of log records to the view: events folded per job, offsets in the same commit."""

import logging
import math
from dataclasses import dataclass, field

from prometheus_client import Histogram

from services.projector.projection import apply_event
from services.shared.events import (
    DigitsStored,
    JobEvent,
    NewerEvent,
    UnreadableEvent,
    decode_digits,
    decode_job_event,
)
from services.shared.records import DeliveredRecord
from services.shared.view import TERMINAL_STATUSES, JobView, ViewStore

log = logging.getLogger(__name__)

JOB_SECONDS = Histogram(
    "pi_jobs_job_duration_seconds",
    "From request to completion, by size (decimals, rounded up to a power of ten)",
    ["size"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)


def size_label(num: int) -> str:
    return f"1e{max(0, math.ceil(math.log10(num)))}"


@dataclass(frozen=True)
class LogRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class DecodedBatch:
    job_events: list[JobEvent] = field(default_factory=list)
    chunks: list[DigitsStored] = field(default_factory=list)
    # (topic, partition) -> the next offset to read: past every record, readable or not, up to
    # a record too new to read.
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    unreadable: list[tuple[LogRecord, str]] = field(default_factory=list)
    # (topic, partition) -> (offset, why) of a record this code is too old to read: the view
    # stops there on that partition, until an upgraded projector reads it.
    held: dict[tuple[str, int], tuple[int, NewerEvent]] = field(default_factory=dict)

    def read_past(self, record: DeliveredRecord) -> bool:
        """Whether the batch moves the view past the record (not held back as too new)."""
        return record.offset < self.positions.get((record.topic, record.partition), 0)


def decode_batch(records: list[LogRecord], digits_topic: str) -> DecodedBatch:
    batch = DecodedBatch()
    for record in records:
        where = (record.topic, record.partition)
        if where in batch.held:
            continue
        try:
            if record.topic == digits_topic:
                batch.chunks.append(decode_digits(record.value))
            else:
                batch.job_events.append(decode_job_event(record.value))
        except NewerEvent as newer:
            batch.held[where] = (record.offset, newer)
            continue
        except UnreadableEvent as error:
            batch.unreadable.append((record, str(error)))
        batch.positions[where] = record.offset + 1
    return batch


def project_batch(store: ViewStore, batch: DecodedBatch) -> None:
    jobs = store.load_jobs(event.job_id for event in batch.job_events)
    changed: dict[str, JobView] = {}
    for event in batch.job_events:
        before = jobs.get(event.job_id)
        after = apply_event(before, event)
        if after is not None and after != before:
            jobs[event.job_id] = changed[event.job_id] = after
            if after.status in TERMINAL_STATUSES:  # (a finished job never changes again)
                # One line a job, when the view shows how it ended.
                log.info("job is %s", after.status, extra={"job_id": after.job_id})
                if after.status == "complete" and after.finished_at is not None:
                    seconds = (after.finished_at - after.requested_at).total_seconds()
                    JOB_SECONDS.labels(size_label(after.num)).observe(seconds)
    store.commit(changed.values(), batch.chunks, batch.positions)
