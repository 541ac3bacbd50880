"""Reading the whole log and comparing the view with it: what the crash tests and the soak
check at the end (nothing lost, nothing applied twice, nothing listed twice)."""

import asyncio
from collections import Counter
from dataclasses import dataclass

import httpx

from services.projector.projection import fold
from services.shared.events import JobEvent, decode_job_event
from services.shared.kafka import read_to_end
from services.shared.records import DeliveredRecord
from services.shared.settings import KafkaSettings
from services.shared.view import JobView, ViewReader


@dataclass(frozen=True)
class LoggedEvent:
    partition: int
    offset: int
    event: JobEvent


async def read_log(settings: KafkaSettings) -> tuple[list[LoggedEvent], dict[int, int]]:
    """Every record of the events topic, and the end offset of each partition."""
    logged: list[LoggedEvent] = []

    def take(records: list[DeliveredRecord]) -> None:
        logged.extend(
            LoggedEvent(r.partition, r.offset, decode_job_event(r.value)) for r in records
        )

    ends = await read_to_end(settings, [settings.events_topic], take)
    assert ends, f"{settings.events_topic} has no partitions"
    return logged, {partition: end for (_, partition), end in ends.items()}


def how_view_differs_from_the_log(settings: KafkaSettings, view: ViewReader) -> str | None:
    """None when the view has read the events topic to its end and holds each job exactly as
    folding its events once, in log order, gives it; else what differs."""
    logged, ends = asyncio.run(read_log(settings))
    positions = {
        partition: offset
        for (topic, partition), offset in view.positions().items()
        if topic == settings.events_topic
    }
    if {p: o for p, o in positions.items() if o} != {p: e for p, e in ends.items() if e}:
        return f"view read up to {positions}, log ends at {ends}"
    in_view = {job.job_id: job for job in view.list_jobs(None, 10_000_000, None)}
    by_job: dict[str, list[JobEvent]] = {}
    for item in sorted(logged, key=lambda item: (item.partition, item.offset)):
        by_job.setdefault(item.event.job_id, []).append(item.event)
    folded: dict[str, JobView | None] = {j: fold(events) for j, events in by_job.items()}
    if folded == in_view:
        return None
    wrong = sorted(j for j in folded.keys() | in_view.keys() if folded.get(j) != in_view.get(j))
    job_id = wrong[0]
    return (
        f"{len(wrong)} jobs differ, e.g. {job_id}: "
        f"log folds to {folded.get(job_id)!r}, view has {in_view.get(job_id)!r}"
    )


def listed_job_ids(client: httpx.Client) -> list[str]:
    """Every job of GET /pi_jobs, page after page."""
    job_ids: list[str] = []
    params: dict[str, str | int] = {"limit": 100}
    while True:
        response = client.get("/pi_jobs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        job_ids += [job["job_id"] for job in page["jobs"]]
        if not page["next_cursor"]:
            return job_ids
        params["cursor"] = page["next_cursor"]


def listed_twice(client: httpx.Client) -> list[str]:
    return [job_id for job_id, n in Counter(listed_job_ids(client)).items() if n > 1]
