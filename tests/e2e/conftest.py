"""All four services as real processes on free ports, against the session's broker."""

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.local_stack import SERVICES, LocalStack


def start_stack(
    bootstrap: str,
    data_dir: Path,
    topic_prefix: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> LocalStack:
    stack = LocalStack.on_free_ports(
        bootstrap,
        data_dir,
        topic_prefix=topic_prefix or f"e2e-{uuid.uuid4().hex[:12]}",
        log_to_files=True,
        extra_env=extra_env or {},
    )
    stack.start()
    try:
        stack.wait_ready(timeout=120)
    except BaseException:
        stop_stack(stack)
        raise
    return stack


def stop_stack(stack: LocalStack, show_logs: bool = False) -> None:
    names = list(stack.processes) or list(SERVICES)
    stack.stop()
    if show_logs:
        for service in names:
            path = stack.log_path(service)
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {service} log (last lines) ---", *tail, sep="\n", file=sys.stderr)


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("stack"))
    yield running
    stop_stack(running, show_logs=True)


@pytest.fixture
def client(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=60) as http:
        yield http
