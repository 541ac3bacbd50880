"""The calculator's offset commits, against a stand-in for the consumer's commit()."""

import asyncio
from dataclasses import dataclass, field

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from services.calculator.committer import Committer
from tests.support import wait_until_async

P0, P1 = TopicPartition("events", 0), TopicPartition("events", 1)


@dataclass
class FakeConsumer:
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    fail_with: list[BaseException] = field(default_factory=list)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.commits.append(dict(offsets))

    def committed(self) -> dict[TopicPartition, int]:
        merged: dict[TopicPartition, int] = {}
        for commit in self.commits:
            merged.update(commit)
        return merged


def begin(committer: Committer, tp: TopicPartition, *offsets: int) -> None:
    for offset in offsets:
        committer.offsets.begin(tp, offset)


async def test_only_the_finished_prefix_of_each_partition_is_committed() -> None:
    consumer = FakeConsumer()
    committer = Committer(consumer)
    begin(committer, P0, 0, 1, 2)
    begin(committer, P1, 5)
    committer.finished(P0, 0)
    committer.finished(P0, 2)  # 1 still running: nothing past it
    committer.finished(P1, 5)
    await committer.commit()
    assert consumer.committed() == {P0: 1, P1: 6}
    committer.finished(P0, 1)
    await committer.commit()
    assert consumer.committed() == {P0: 3, P1: 6}
    await committer.commit()
    assert len(consumer.commits) == 2  # nothing new: nothing sent


async def test_a_burst_of_finished_jobs_costs_a_commit_or_two() -> None:
    consumer = FakeConsumer()
    committer = Committer(consumer)
    running = asyncio.create_task(committer.run(interval_seconds=0.05))
    begin(committer, P0, *range(200))
    for offset in range(200):
        committer.finished(P0, offset)
        if offset % 50 == 0:
            await asyncio.sleep(0)

    async def all_committed() -> bool:
        return consumer.committed().get(P0) == 200

    await wait_until_async(all_committed, 5, "every offset committed")
    assert len(consumer.commits) <= 5
    running.cancel()


async def test_kafka_errors_are_retried_and_anything_else_ends_the_task() -> None:
    consumer = FakeConsumer(fail_with=[KafkaError("coordinator moved")])
    committer = Committer(consumer)
    running = asyncio.create_task(committer.run(interval_seconds=0.01))
    begin(committer, P0, 0)
    committer.finished(P0, 0)

    async def committed_after_the_error() -> bool:
        return consumer.committed() == {P0: 1}

    await wait_until_async(committed_after_the_error, 5, "a commit after the error")
    consumer.fail_with.append(RuntimeError("a bug"))
    begin(committer, P0, 1)
    committer.finished(P0, 1)
    with pytest.raises(RuntimeError, match="a bug"):
        await asyncio.wait_for(running, 5)


async def test_losing_a_partition_commits_its_prefix_then_lets_its_jobs_go() -> None:
    consumer = FakeConsumer()
    let_go: list[TopicPartition] = []
    committer = Committer(consumer, on_revoked=let_go.append)
    begin(committer, P0, 0, 1)
    begin(committer, P1, 0)
    committer.finished(P0, 0)
    await committer.on_partitions_revoked({P0})
    assert consumer.committed() == {P0: 1} and let_go == [P0]
    assert P0 not in committer.offsets.committable()


async def test_after_close_nothing_is_committed() -> None:
    consumer = FakeConsumer()
    committer = Committer(consumer)
    begin(committer, P0, 0)
    committer.close()
    committer.finished(P0, 0)
    await committer.commit()
    assert consumer.commits == []
