"""Shared fixtures: one real Kafka broker for the session, a topic prefix per test, free ports,
spans kept in memory.

The broker is KAFKA_BOOTSTRAP_SERVERS when set, else a testcontainers Kafka when a Docker engine
answers, else the project's own broker from deploy/kafka/ started on free ports.
"""

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from deploy.kafka.local_broker import LocalBroker, free_port
from deploy.postgres.local_postgres import LocalPostgres
from services.shared import tracing
from services.shared.settings import KafkaSettings


def _docker_engine_answers() -> bool:
    """A GET /_ping on the local Docker socket (the docker library leaks its socket on failure)."""
    path = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as engine:
            engine.settimeout(2)
            engine.connect(path)
            engine.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = engine.recv(64).split(b"\r\n")[0]
            return status_line.startswith(b"HTTP/1.") and b" 200 " in status_line
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
        return
    with ExitStack() as cleanup:
        if _docker_engine_answers():
            from testcontainers.kafka import KafkaContainer

            container = cleanup.enter_context(KafkaContainer().with_kraft())
            yield container.get_bootstrap_server()
            return
        broker = LocalBroker.on_free_ports(tmp_path_factory.mktemp("kafka"))
        cleanup.enter_context(broker)
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """Debian's PostgreSQL, started on a free port the first time a test needs it."""
    # Not under pytest's tmp dir: that is closed to the `postgres` user the server runs as
    # when the tests run as root.
    data_dir = Path(tempfile.mkdtemp(prefix="pi-jobs-pg-"))
    try:
        with LocalPostgres(data_dir, port=free_port(), durable=False) as server:
            yield server
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Settings with topics of their own, so tests never see each other's events."""
    return KafkaSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        pi_jobs_topic_prefix=f"test-{uuid.uuid4().hex[:12]}",
        pi_jobs_event_partitions=3,
    )


@pytest.fixture
def view_path(tmp_path: Path) -> Path:
    return tmp_path / "view.sqlite3"


@pytest.fixture
def traced() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process for the test, every finished span kept in the exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()
