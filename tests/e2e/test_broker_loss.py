"""Killing one broker of three under a steady stream of submissions loses no acknowledged job."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.kafka.local_broker import free_port
from deploy.kafka.local_cluster import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR, LocalCluster
from deploy.local_stack import LocalStack
from services.shared.settings import KafkaSettings
from tests.e2e.helpers import download_text, wait_complete
from tests.stacks import stack_running
from tests.submission_stream import SubmissionStream
from tests.support import reference_pi_text, wait_until

CLIENT_TIMEOUT = 60.0  # generous: when Kafka cannot take a job in time, the API answers 503
SUBMIT_EVERY = 0.03  # seconds between submissions
IN_FLIGHT = 8  # at most this many POSTs unanswered; the stream skips a beat beyond that
MAX_SUBMISSIONS = 1500
BEFORE_KILL = 20  # jobs acknowledged before the kill
AFTER_KILL = 100  # jobs submitted after the kill that must be acknowledged before the stream ends

PREFIX = "broker-loss"

pytestmark = pytest.mark.timeout(300)


def distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return list(ports)


def rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def report(message: str) -> None:
    print(f"[broker-loss] {message}", file=sys.stderr, flush=True)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    ports = distinct_free_ports(6)
    cluster = LocalCluster(tmp_path / "kafka", ports[:3], ports[3:])
    started = time.monotonic()
    with cluster:
        rss = {i: rss_mib(n.process.pid) for i, n in cluster.nodes.items() if n.process}
        report(f"cluster ready in {time.monotonic() - started:.1f} s; RSS MiB by node: {rss}")
        yield cluster


@pytest.fixture
def stack(cluster: LocalCluster, tmp_path: Path) -> Iterator[LocalStack]:
    with stack_running(
        cluster.bootstrap_servers,
        tmp_path / "stack",
        topic_prefix=PREFIX,
        extra_env={
            "PI_JOBS_REPLICATION_FACTOR": str(REPLICATION_FACTOR),
            "PI_JOBS_MIN_INSYNC_REPLICAS": str(MIN_INSYNC_REPLICAS),
        },
    ) as stack:
        yield stack


# --- what the brokers say about the topics ---------------------------------------------------


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


async def _describe(bootstrap: str, topics: list[str] | None) -> list[PartitionState]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    for topic in described:
        assert topic["error_code"] == 0, topic
    return [
        PartitionState(
            t["topic"], p["partition"], p["leader"], tuple(p["replicas"]), tuple(p["isr"])
        )
        for t in described
        for p in t["partitions"]
    ]


async def _min_insync_replicas(bootstrap: str, topics: list[str]) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        wanted = {"min.insync.replicas": None}
        resources = [ConfigResource(ConfigResourceType.TOPIC, t, wanted) for t in topics]
        responses = await admin.describe_configs(resources)
    finally:
        await admin.close()
    found = {}
    for response in responses:
        for error_code, _, _, name, entries in response.resources:
            assert error_code == 0, (name, error_code)
            found[name] = {key: value for key, value, *_ in entries}["min.insync.replicas"]
    return found


def describe(bootstrap: str, topics: list[str] | None = None) -> list[PartitionState]:
    """Every partition of `topics` (of all topics, by default): leader, replicas, ISR."""
    return asyncio.run(_describe(bootstrap, topics))


def random_nums() -> Iterator[int]:
    """Small nums, the same sequence each run."""
    pick = random.Random(314159)
    while True:
        yield pick.randint(1, 2000)


# --- the test --------------------------------------------------------------------------------


def all_jobs(client: httpx.Client) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = client.get("/pi_jobs", params=params).json()
        jobs += page["jobs"]
        cursor = page["next_cursor"]
        if cursor is None:
            return jobs


def test_every_acknowledged_job_completes_when_a_broker_is_killed(
    cluster: LocalCluster, stack: LocalStack
) -> None:
    started = time.monotonic()
    bootstrap = cluster.bootstrap_servers
    kafka = KafkaSettings(kafka_bootstrap_servers=bootstrap, pi_jobs_topic_prefix=PREFIX)

    partitions = describe(bootstrap)
    topics = sorted({p.topic for p in partitions if p.topic.startswith(f"{PREFIX}.")})
    assert {kafka.events_topic, kafka.digits_topic} <= set(topics)
    assert "__consumer_offsets" in {p.topic for p in partitions}
    for p in partitions:
        assert len(p.replicas) == REPLICATION_FACTOR and len(p.isr) == REPLICATION_FACTOR, p
    assert asyncio.run(_min_insync_replicas(bootstrap, topics)) == {
        t: str(MIN_INSYNC_REPLICAS) for t in topics
    }

    # The active controller: its loss costs a controller election on top of moving the
    # leadership of the partitions it leads, a share of the events topic's among them.
    victim = cluster.active_controller()
    assert victim in cluster.nodes
    led = [p.partition for p in partitions if p.topic == kafka.events_topic and p.leader == victim]
    coordinator = next(p.leader for p in partitions if p.topic == "__consumer_offsets")
    report(f"killing node {victim}: the controller; leads events partitions {led}")
    report(f"the group coordinator (leads __consumer_offsets) is node {coordinator}")

    with SubmissionStream(
        stack.url,
        random_nums(),
        in_flight=IN_FLIGHT,
        pace=SUBMIT_EVERY,
        timeout=CLIENT_TIMEOUT,
        most=MAX_SUBMISSIONS,
        expected=frozenset({200, 503}),
    ) as stream:
        wait_until(lambda: stream.has_acknowledged(BEFORE_KILL), 60, "acknowledged submissions")
        killed_at = time.monotonic()
        cluster.kill(victim)
        wait_until(
            lambda: stream.has_acknowledged(AFTER_KILL, sent_after=killed_at),
            120,
            f"{AFTER_KILL} submissions sent after the kill to be acknowledged",
        )
    submissions = stream.submissions()
    acknowledged = [s for s in submissions if s.acknowledged]
    slowest = max(s.answered_at - s.sent_at for s in submissions if s.answered_at is not None)
    first_after = min(s.answered_at or 0 for s in stream.acknowledged(sent_after=killed_at))
    report(
        f"{len(submissions)} POSTs: {len(acknowledged)} acknowledged, "
        f"{sum(s.status == 503 for s in submissions)} answered 503; slowest answer "
        f"{slowest:.1f} s; first acknowledgement of a POST sent after the kill "
        f"{first_after - killed_at:.1f} s after it"
    )

    for s in submissions:
        assert s.status in (200, 503), s  # never a 500, never a hang past the client timeout
        if s.status == 200:
            assert s.body["success"] is True and isinstance(s.body["job_id"], str), s
        else:
            assert s.body["success"] is False and isinstance(s.body["error"], str), s

    with httpx.Client(base_url=stack.url, timeout=CLIENT_TIMEOUT) as client:
        for s in acknowledged:
            status = wait_complete(client, s.body["job_id"], timeout=120)
            assert status["num"] == s.num
            assert download_text(client, s.body["job_id"]) == reference_pi_text(s.num)
        report(f"all {len(acknowledged)} acknowledged jobs complete with the right digits")
        # A POST answered 503 may still have reached the log (the producer retries); the API
        # then withdraws it, so no job a client was told failed is ever computed.
        ids = {s.body["job_id"] for s in acknowledged}

        def no_refused_job_computed() -> bool:
            listed = all_jobs(client)
            others = [j for j in listed if j["job_id"] not in ids]
            assert all(j["status"] in ("queued", "cancelled") for j in others), others
            return all(j["status"] == "cancelled" for j in others)

        wait_until(no_refused_job_computed, 120, "refused submissions withdrawn")

    # The killed node comes back and catches up: every replica in sync again.
    cluster.restart(victim)
    wait_until(
        lambda: all(len(p.isr) == REPLICATION_FACTOR for p in describe(bootstrap, topics)),
        120,
        f"node {victim} to rejoin the in-sync replicas",
    )
    rss = {i: rss_mib(n.process.pid) for i, n in cluster.nodes.items() if n.process}
    report(f"node {victim} rejoined; test took {time.monotonic() - started:.1f} s; RSS MiB {rss}")
