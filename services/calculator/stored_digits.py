"""How many leading decimals of pi the digits topic already holds.

Chunks are only ever published to extend a prefix already in the log, in order, on one
partition; so the end of the last record is the length of a stored prefix (the whole one, unless
two calculators published at once: then a shorter one, and some digits are computed again).
"""

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.shared.events import UnreadableEvent, decode_digits
from services.shared.settings import KafkaSettings

log = logging.getLogger(__name__)


class StoredDigits:
    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._known = 0
        # Jobs run side by side: one reads the log's tail while the others wait for its answer.
        self._reading = asyncio.Lock()

    @property
    def known(self) -> int:
        """The stored prefix length as last learnt, without reading the log."""
        return self._known

    def note_published(self, end: int) -> None:
        self._known = max(self._known, end)

    async def at_least(self, wanted: int) -> int:
        """The stored prefix length; reads the log's tail only when the cached figure is short."""
        if self._known < wanted:
            async with self._reading:
                if self._known < wanted:
                    self._known = max(self._known, await self._read_from_log())
        return self._known

    async def _read_from_log(self) -> int:
        tp = TopicPartition(self._settings.digits_topic, 0)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            if end == 0:
                return 0
            consumer.seek(tp, end - 1)
            record = await consumer.getone()
            try:
                return decode_digits(record.value).end
            except UnreadableEvent as error:
                log.warning("last digits record is unreadable", extra={"error": str(error)[:300]})
                return 0
        finally:
            await consumer.stop()
