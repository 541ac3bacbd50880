"""Fixtures shared by the unit tests."""

import threading
from collections.abc import Callable, Iterator

import pytest

from deploy.logs import Follower


@pytest.fixture
def run_follower() -> Iterator[Callable[[Follower], None]]:
    """Starts a Follower on a thread of its own, as `make run` and `make logs` do; every one
    started is stopped when the test ends."""
    started: list[tuple[threading.Event, threading.Thread]] = []

    def run(follower: Follower) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=follower.follow, args=(stop, 0.02))
        thread.start()
        started.append((stop, thread))

    yield run
    for stop, thread in started:
        stop.set()
        thread.join(10)
