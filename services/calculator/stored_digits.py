"""How many leading digits of pi, of each radix, the digits topic already holds.

Chunks of one radix are only ever published to extend a prefix already in the log, in order, on
one partition; so the end of the last record of a radix is the length of a stored prefix (the
whole one, unless two calculators published at once: then a shorter one, and some digits are
computed again). Decimal and hexadecimal chunks share the partition: the last record of a radix
is found by reading back from the end, further each time it is not in the window.
"""

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.shared.events import DigitsStored, Radix, UnreadableEvent, decode_digits
from services.shared.settings import KafkaSettings

log = logging.getLogger(__name__)

_FIRST_WINDOW = 16  # records read back from the end before looking further
_READ_SECONDS = 60.0


class StoredDigits:
    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._known: dict[Radix, int] = {10: 0, 16: 0}
        # Jobs run side by side: one reads the log's tail while the others wait for its answer.
        self._reading = asyncio.Lock()

    def known(self, radix: Radix = 10) -> int:
        """The stored prefix length as last learnt, without reading the log."""
        return self._known[radix]

    def note_published(self, chunk: DigitsStored) -> None:
        self._known[chunk.radix] = max(self._known[chunk.radix], chunk.end)

    async def at_least(self, wanted: int, radix: Radix = 10) -> int:
        """The stored prefix length; reads the log's tail only when the cached figure is short."""
        if self._known[radix] < wanted:
            async with self._reading:
                if self._known[radix] < wanted:
                    from_log = await self._read_from_log(radix)
                    self._known[radix] = max(self._known[radix], from_log)
        return self._known[radix]

    async def _read_from_log(self, radix: Radix) -> int:
        tp = TopicPartition(self._settings.digits_topic, 0)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            window = _FIRST_WINDOW
            while end > 0:
                start = max(0, end - window)
                last = await _last_of_radix(consumer, tp, start, end, radix)
                if last is not None:
                    return last.end
                if start == 0:
                    break
                end, window = start, window * 4
            return 0
        finally:
            await consumer.stop()


async def _last_of_radix(
    consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int, radix: Radix
) -> DigitsStored | None:
    """The last readable chunk of `radix` among the records at offsets [start, end)."""
    consumer.seek(tp, start)
    last = None
    position = start
    # The record at end - 1 is never compacted away (the newest of its key): it ends the read.
    async with asyncio.timeout(_READ_SECONDS):
        while position < end:
            batches = await consumer.getmany(tp, timeout_ms=1000)
            for record in batches.get(tp, []):
                position = record.offset + 1
                if record.offset >= end:
                    break
                try:
                    chunk = decode_digits(record.value)
                except UnreadableEvent as error:
                    log.warning("unreadable digits record", extra={"error": str(error)[:300]})
                    continue
                if chunk.radix == radix:
                    last = chunk
    return last
