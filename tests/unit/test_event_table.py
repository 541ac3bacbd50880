"""README.md's event table is the truth about who publishes and who consumes each event: every
event type in services/shared/events.py has a row, its producers are the services that build it,
and its consumers are the services whose dispatch table (or digits reader) takes it."""

import ast
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

import services.calculator.__main__ as calculator
from services.projector import projection
from services.shared import events

ROOT = Path(__file__).parents[2]
SERVICES = ("api", "calculator", "projector", "downloader")
ENVELOPE = {"type", "version", "occurred_at"}  # every event carries these

# Each consumer of the events topic and its table from event type to handler.
DISPATCH_TABLES: dict[str, list[Mapping[type[Any], Any]]] = {
    "calculator": [calculator.EVENT_HANDLERS],
    "projector": [projection.CREATES, projection.CHANGES],
}


def job_event_types() -> set[type[BaseModel]]:
    (union, _discriminator) = get_args(events.JobEvent)
    return set(get_args(union))


def all_event_types() -> set[type[BaseModel]]:
    return job_event_types() | {events.DigitsStored}


def readme_rows() -> dict[str, dict[str, Any]]:
    """The table's rows by event name: fields, topic, producers, consumers."""
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \|(.*)\|$", readme, re.MULTILINE)
    assert rows, "README.md has no event table"

    def names(cell: str) -> set[str]:
        return {name.strip() for name in cell.split(",")}

    table = {}
    for event, rest in rows:
        fields, topic, producers, consumers = (cell.strip() for cell in rest.split("|"))
        table[event] = {
            "fields": names(fields),
            "topic": topic,
            "producers": names(producers),
            "consumers": names(consumers),
        }
    return table


def calls_by_service() -> dict[str, set[str]]:
    """The names each service's code calls (constructors among them), from its source."""
    called: dict[str, set[str]] = {}
    for service in SERVICES:
        names = called.setdefault(service, set())
        for path in (ROOT / "services" / service).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    names.add(node.func.id)
    return called


def test_every_event_type_has_a_row_and_every_row_an_event_type() -> None:
    assert set(readme_rows()) == {cls.__name__ for cls in all_event_types()}


def test_each_rows_fields_and_topic_are_the_events() -> None:
    rows = readme_rows()
    for cls in all_event_types():
        row = rows[cls.__name__]
        assert row["fields"] == set(cls.model_fields) - ENVELOPE, cls.__name__
        topic = "events" if cls in job_event_types() else "digits"
        assert row["topic"] == topic, cls.__name__


def test_each_event_has_a_producer_and_only_the_producers_the_table_names() -> None:
    called = calls_by_service()
    for name, row in readme_rows().items():
        building = {service for service, names in called.items() if name in names}
        assert building, f"no service publishes {name}"
        assert building == row["producers"], name


def test_each_event_is_consumed_by_the_dispatch_tables_the_table_names() -> None:
    called = calls_by_service()
    # A service that reads the events topic must say what it does with each type in a table.
    readers = {service for service, names in called.items() if "decode_job_event" in names}
    assert readers == set(DISPATCH_TABLES), "a consumer of the events topic without a table"
    for cls in job_event_types():
        consumers = {
            service
            for service, tables in DISPATCH_TABLES.items()
            if any(cls in table for table in tables)
        }
        assert consumers == readme_rows()[cls.__name__]["consumers"], cls.__name__
    # Digits are read by topic, not dispatched by type: their consumers decode them.
    digit_readers = {service for service, names in called.items() if "decode_digits" in names}
    assert digit_readers == readme_rows()["DigitsStored"]["consumers"]


def test_the_folds_tables_cover_every_job_event_once() -> None:
    creates, changes = set(projection.CREATES), set(projection.CHANGES)
    assert not creates & changes
    assert creates | changes == job_event_types()
