"""The consumers' lag, a Prometheus metric of the calculator and the projector."""

import asyncio

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import IllegalStateError
from prometheus_client import Gauge

CONSUMER_LAG = Gauge(
    "pi_jobs_consumer_lag", "Records not yet read by a consumer", ["group", "topic", "partition"]
)


async def track_consumer_lag(consumer: AIOKafkaConsumer, group: str) -> None:
    """Every few seconds, how far each assigned partition's end is ahead of the consumer."""
    while True:
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            try:
                position = await consumer.position(tp)
            except IllegalStateError:
                continue  # no longer assigned: a rebalance happened meanwhile
            if end is not None:
                CONSUMER_LAG.labels(group, tp.topic, tp.partition).set(max(end - position, 0))
        await asyncio.sleep(2)
