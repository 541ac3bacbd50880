"""Partitions a consumer stopped at an event too new for its code (a rolling upgrade that
started with the producers): nothing past that event is processed or committed, the consumer
answers /readyz with 503 naming the version it needs, and the consumer that replaces it
(upgraded) goes on from that very event. Nothing is dead-lettered: the event is not bad."""

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.shared.events import NewerEvent

log = logging.getLogger(__name__)


class HeldPartitions:
    def __init__(self, consumer: AIOKafkaConsumer, service: str) -> None:
        self._consumer = consumer
        self._service = service
        self._held: dict[TopicPartition, str] = {}

    def hold(self, tp: TopicPartition, offset: int, newer: NewerEvent) -> None:
        """Stop reading `tp` at `offset` (the next to read, once upgraded)."""
        self._consumer.pause(tp)
        self._consumer.seek(tp, offset)
        if tp not in self._held:
            log.warning(
                "holding a partition at an event too new for this code: upgrade this service",
                extra={"partition": str(tp), "offset": offset, "event": str(newer)},
            )
        self._held[tp] = f"{tp.topic}[{tp.partition}] at offset {offset} holds {newer}"

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Gone to another consumer (a rebalance): theirs to read."""
        for tp in partitions:
            self._held.pop(tp, None)

    def is_held(self, tp: TopicPartition) -> bool:
        return tp in self._held

    def problems(self) -> list[str]:
        return [f"{self._service} needs an upgrade: {why}" for why in self._held.values()]
