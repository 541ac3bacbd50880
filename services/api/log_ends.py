"""Where the events topic ends: what a read must wait for the view to reach, so that it sees
every write acknowledged before it began (read-your-writes on any API process).

One query answers every read waiting at the time it is sent; reads that arrive while a query is
on its way wait for the next one, since the one on its way may have left before their write was
acknowledged. A burst of reads costs a handful of queries.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.shared.kafka import connect_with_retry, topic_partitions
from services.shared.settings import KafkaSettings

log = logging.getLogger(__name__)

# (topic, partition) -> the offset the next record written there will get.
LogEnd = dict[tuple[str, int], int]


class CoalescedQuery:
    """Runs `query` for callers in groups: each group's query starts after all of them called."""

    def __init__(self, query: Callable[[], Awaitable[LogEnd]]) -> None:
        self._query = query
        self._next: asyncio.Future[LogEnd] | None = None
        self._running: asyncio.Task[None] | None = None

    async def __call__(self) -> LogEnd:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        answer = self._next
        if self._running is None:
            self._running = asyncio.create_task(self._serve())
        return await asyncio.shield(answer)

    async def _serve(self) -> None:
        try:
            while self._next is not None:
                answer, self._next = self._next, None
                try:
                    answer.set_result(await self._query())
                except Exception as error:
                    answer.set_exception(error)
                    answer.exception()  # each caller sees it; none left unretrieved
        finally:
            self._running = None


class LogEnds(Protocol):
    """Where the events topic ends: the broker's answer in a process, a fake in a unit test."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def read(self) -> Callable[[], Awaitable[LogEnd]]:
        """A query sent after the call (it may raise when the broker is unreachable)."""
        ...


class LogEndReader:
    """Reads the events topic's end offsets (ListOffsets), from a consumer in no group."""

    def __init__(self, kafka: KafkaSettings, timeout_seconds: float = 2.0) -> None:
        self._kafka = kafka
        self._timeout = timeout_seconds
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self.read = CoalescedQuery(self._read)

    async def connect(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._kafka.kafka_bootstrap_servers, enable_auto_commit=False
        )
        await connect_with_retry(consumer.start, "api")
        self._consumer = consumer

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def _read(self) -> LogEnd:
        consumer = self._consumer
        if consumer is None:
            raise KafkaError("not connected to kafka yet")
        if not self._partitions:
            self._partitions = await topic_partitions(self._kafka, [self._kafka.events_topic])
        async with asyncio.timeout(self._timeout):
            ends = await consumer.end_offsets(self._partitions)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
