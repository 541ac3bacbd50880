"""The calculator's offset commits: each partition's finished prefix, a few times a second.

Jobs finish out of order (offsets.py says which offset is safe); a crash re-delivers what was
not committed, so at worst some finished work is done again, never a job lost.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from services.calculator.offsets import OffsetTracker
from services.shared.kafka import partition_names

log = logging.getLogger(__name__)


class Commits(Protocol):
    """What the committer needs of a consumer (aiokafka's AIOKafkaConsumer has it)."""

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...


class Committer(ConsumerRebalanceListener):  # type: ignore[misc]
    """Also the consumer's rebalance listener: what it loses is committed, then let go."""

    def __init__(
        self, consumer: Commits, on_revoked: Callable[[TopicPartition], None] = lambda _: None
    ) -> None:
        self.offsets = OffsetTracker()
        self._consumer = consumer
        self._on_revoked = on_revoked
        self._committed: dict[TopicPartition, int] = {}
        self._changed = asyncio.Event()
        self._closed = False

    def close(self) -> None:
        """From now on nothing is committed: jobs cut short by a shutdown are re-delivered."""
        self._closed = True

    def finished(self, tp: TopicPartition, offset: int) -> None:
        if not self._closed:
            self.offsets.end(tp, offset)
            self._changed.set()

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        if self._closed:
            return
        due = {
            tp: offset
            for tp, offset in self.offsets.committable().items()
            if isinstance(tp, TopicPartition)
            and (only is None or tp in only)
            and self._committed.get(tp) != offset
        }
        if due:
            await self._consumer.commit(due)
            self._committed.update(due)

    async def run(self, interval_seconds: float = 0.5) -> None:
        """Commit what is finished, at most every `interval_seconds`: a burst of jobs costs a
        commit or two. Kafka's errors are retried; anything else ends the task, and with it the
        calculator (it runs in its TaskGroup), rather than leave commits silently stopped."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self.commit()
            except KafkaError as error:
                # Not committed means re-delivered later: safe, only some work is repeated.
                log.warning("commit failed; trying again", extra={"error": repr(error)})
                self._changed.set()
            await asyncio.sleep(interval_seconds)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        with contextlib.suppress(KafkaError):
            await self.commit(only=revoked)
        for tp in revoked:
            self.offsets.forget(tp)
            self._committed.pop(tp, None)
            self._on_revoked(tp)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": partition_names(assigned)})
