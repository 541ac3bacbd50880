"""The API app served in this process through httpx.ASGITransport, with its collaborators in
memory: an event log that records what is published and projects it into a real SQLite view
(so a job read after its submission is found), the downloader's own app in-process, and every
consumer role present."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from starlette.types import ASGIApp, Message, Scope

from services.api.app import ApiDeps, create_app
from services.api.log_ends import LogEnd
from services.downloader.app import create_app as create_downloader
from services.projector.handler import DecodedBatch, project_batch
from services.shared.events import JobEvent
from services.shared.kafka import partition_for_key
from services.shared.settings import ApiSettings, KafkaSettings, ZipCacheSettings
from services.shared.sqlite_view import SqliteView
from services.shared.zip_cache import ZipCache

PARTITIONS = 3


@dataclass
class InMemoryEventLog:
    """Publisher and log ends of the API in one: each event published is kept in `published`,
    given the next offset of its key's partition, and folded into `view` as the projector
    would."""

    view: SqliteView
    topic: str
    published: list[JobEvent] = field(default_factory=list)
    connected: bool = True
    _ends: dict[tuple[str, int], int] = field(default_factory=dict)

    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def publish(self, event: JobEvent) -> tuple[int, int]:
        partition = partition_for_key(event.job_id, range(PARTITIONS))
        where = (self.topic, partition)
        offset = self._ends.get(where, 0)
        self.published.append(event)
        self._ends[where] = offset + 1
        project_batch(self.view, DecodedBatch(job_events=[event], positions={where: offset + 1}))
        return partition, offset

    @property
    def read(self) -> Callable[[], Awaitable[LogEnd]]:
        async def ends() -> LogEnd:
            return {(self.topic, p): self._ends.get((self.topic, p), 0) for p in range(PARTITIONS)}

        return ends


async def no_consumer_missing() -> list[str]:
    return []


@dataclass(frozen=True)
class InProcessApi:
    client: httpx.AsyncClient
    log: InMemoryEventLog
    view: SqliteView
    # The downloader's app, which the API's downloads go to.
    downloader: httpx.AsyncClient


@asynccontextmanager
async def in_process_api(
    data_dir: Path,
    api: ApiSettings | None = None,
    missing_consumers: Callable[[], Awaitable[list[str]]] = no_consumer_missing,
) -> AsyncIterator[InProcessApi]:
    """The app with its lifespan started, and a client to it; its view and caches in `data_dir`.
    `missing_consumers`: what readiness is told of the calculators and projectors (all there)."""
    api = api or ApiSettings()
    kafka = KafkaSettings(pi_jobs_topic_prefix="in-process")
    view = SqliteView(data_dir / "view.sqlite3", writer=True)
    cache = ZipCache(data_dir / "zips", 1 << 26)
    log = InMemoryEventLog(view, kafka.events_topic)
    downloader = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_downloader(view, cache)),
        base_url="http://downloader",
    )
    deps = ApiDeps(log, log, downloader, missing_consumers)
    zips = ZipCacheSettings(
        pi_jobs_zip_cache_dir=data_dir / "zips",
        pi_jobs_zip_cache_bytes=1 << 26,
        pi_jobs_digit_files_dir=data_dir / "digits",
    )
    app = create_app(api, kafka, view, zips, deps)
    try:
        async with (
            running_lifespan(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as client,
        ):
            yield InProcessApi(client, log, view, downloader)
    finally:
        view.close()


@asynccontextmanager
async def running_lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """The app's startup before the block and its shutdown after (ASGITransport runs neither)."""
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    async def serve() -> None:
        await app(scope, to_app.get, from_app.put)

    serving = asyncio.create_task(serve())

    async def step(message: str) -> None:
        await to_app.put({"type": f"lifespan.{message}"})
        answer = asyncio.create_task(from_app.get())
        await asyncio.wait([answer, serving], return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            answer.cancel()
            serving.result()  # the app's error
            raise AssertionError(f"the app ended its lifespan before {message} completed")
        assert answer.result()["type"] == f"lifespan.{message}.complete", answer.result()

    await step("startup")
    try:
        yield
    finally:
        await step("shutdown")
        await serving
