"""All four services as real processes on free ports, against the session's broker."""

from collections.abc import Iterator

import httpx
import pytest

from deploy.local_stack import LocalStack
from tests.stacks import stack_running


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with stack_running(kafka_bootstrap, tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def client(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=60) as http:
        yield http
