"""Publishing the API's events: a quick 503 when the broker cannot take them, and no job created
behind the back of a client that was told it failed."""

import asyncio
import itertools
import logging
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.shared.events import JobCancelled, JobEvent, JobRequested
from services.shared.kafka import (
    connect_with_retry,
    durable_producer,
    ensure_topics,
    key_partition,
    partition_leader_reachable,
    publish,
)
from services.shared.settings import KafkaSettings
from services.shared.web import ApiError

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_MS = 1500
_UNAVAILABLE = "the job queue is unavailable: try again shortly"


class Publisher(Protocol):
    """Where the API's events go: the broker in a process, a list in a unit test."""

    @property
    def connected(self) -> bool:
        """Whether a publish can be tried (readiness says so while it cannot)."""
        ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, event: JobEvent) -> tuple[int, int]:
        """(partition, offset) once stored, else an ApiError (503)."""
        ...


class EventPublisher:
    """Publishes to the events topic."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self.producer: AIOKafkaProducer | None = None
        self._withdrawals: set[asyncio.Task[None]] = set()

    async def connect(self) -> None:
        await connect_with_retry(lambda: ensure_topics(self._kafka), "api")
        # A write the broker cannot take within this time is answered 503.
        producer = durable_producer(self._kafka, request_timeout_ms=PUBLISH_TIMEOUT_MS)
        await connect_with_retry(producer.start, "api")
        self.producer = producer
        log.info("connected to kafka")

    @property
    def connected(self) -> bool:
        return self.producer is not None

    async def close(self) -> None:
        for task in self._withdrawals:
            task.cancel()
        if self.producer is not None:
            await self.producer.stop()

    async def publish(self, event: JobEvent) -> tuple[int, int]:
        """(partition, offset) once acknowledged by all in-sync replicas, else a 503."""
        producer = self.producer
        if producer is None:
            raise ApiError(503, "the job queue is not reachable yet: try again shortly")
        topic = self._kafka.events_topic
        partition = key_partition(producer, topic, event.job_id)
        # Plainly down: refuse before the write sits in the producer's buffer.
        if partition is not None and not await partition_leader_reachable(
            producer, topic, partition
        ):
            raise ApiError(503, _UNAVAILABLE)
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_MS / 1000 + 0.5):
                return await publish(producer, topic, event.job_id, event, partition)
        except (KafkaError, TimeoutError):
            log.warning("publishing failed", extra={"job_id": event.job_id}, exc_info=True)
            if isinstance(event, JobRequested) and event.idempotency_key is None:
                self._withdraw(event.job_id)
            raise ApiError(503, _UNAVAILABLE) from None

    def _withdraw(self, job_id: str) -> None:
        """The producer may still deliver a request that timed out (it retries). Cancel the job
        after it, on the same partition, so it is never computed. (A submission with an
        Idempotency-Key is not withdrawn: its retry must find the same job.)"""
        task = asyncio.create_task(self._publish_until_acknowledged(JobCancelled(job_id=job_id)))
        self._withdrawals.add(task)
        task.add_done_callback(self._withdrawals.discard)

    async def _publish_until_acknowledged(self, event: JobEvent) -> None:
        assert self.producer is not None
        for attempt in itertools.count():
            try:
                await publish(self.producer, self._kafka.events_topic, event.job_id, event)
                log.info("withdrew a submission answered 503", extra={"job_id": event.job_id})
                return
            except KafkaError:
                await asyncio.sleep(min(2**attempt, 30))
