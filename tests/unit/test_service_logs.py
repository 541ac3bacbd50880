"""The services' log lines (services/shared/logs.py): expected retries are not errors, and lines
name partitions compactly."""

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import GroupCoordinatorNotAvailableError

from services.shared.kafka import partition_names
from services.shared.logs import configure_logging


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("projector")
    yield stream
    root.handlers[:], root.level = handlers, level


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_coordinator_not_elected_yet_is_not_an_error(stderr: io.StringIO) -> None:
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    coordinator.error("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())
    coordinator.error("Unexpected error in coordinator routine")
    retried, unexpected = _lines(stderr)
    assert retried["level"] == "debug"
    assert "GroupCoordinatorNotAvailableError" in retried["message"]
    assert unexpected["level"] == "error"


def test_our_own_errors_stay_errors(stderr: io.StringIO) -> None:
    logging.getLogger("projector").error("GroupCoordinatorNotAvailableError, said a test")
    (line,) = _lines(stderr)
    assert (line["level"], line["service"]) == ("error", "projector")


def test_partitions_are_named_compactly() -> None:
    assigned = {TopicPartition("pi-jobs.events", p) for p in (2, 0, 1)}
    assigned.add(TopicPartition("pi-jobs.digits", 0))
    assert partition_names(assigned) == "pi-jobs.digits[0] pi-jobs.events[0,1,2]"
