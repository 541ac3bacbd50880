"""How log lines look on a person's terminal (deploy/log_lines.py)."""

import io
import json
from datetime import datetime
from typing import Any

import pytest

from deploy.log_lines import Renderer, parse, readable_wanted, record

PLAIN = Renderer(colour=False)


def _json(message: str, **fields: Any) -> str:
    line = {"time": "2026-12-03T03:06:00.123Z", "level": "info", "service": "api"}
    return json.dumps({**line, "logger": "services.api.jobs", "message": message, **fields})


def _local(utc: str) -> str:
    return datetime.fromisoformat(utc).astimezone().strftime("%H:%M:%S")


def test_a_service_line_reads_as_one_line_with_its_part_time_and_fields() -> None:
    line = _json("job requested", job_id="01a2", num=12)
    shown = PLAIN.render("api", line)
    when = _local("2026-12-03T03:06:00Z")
    assert shown == [f"api        | {when} job requested  job_id=01a2 num=12"]


def test_warnings_and_errors_say_so_and_a_traceback_follows_indented() -> None:
    (warning,) = PLAIN.render("calculator", _json("commit failed", level="warning"))
    assert "| " in warning and " warning commit failed" in warning
    error, *traceback = PLAIN.render(
        "api", _json("unexpected error", level="error", exception="Traceback:\n  boom\nValueError")
    )
    assert " error unexpected error" in error and "exception" not in error
    assert traceback == [f"api        |   {t}" for t in ("Traceback:", "  boom", "ValueError")]


def test_chatter_is_left_out_unless_everything_is_asked_for() -> None:
    press = _json("Uvicorn running on http://127.0.0.1:3000 (Press CTRL+C to quit)")
    uvicorn = json.loads(press) | {"logger": "uvicorn.error"}
    retried = _json("Group Coordinator Request failed", level="debug")
    for line in (json.dumps(uvicorn), retried):
        assert PLAIN.render("api", line) == []
        assert len(Renderer(colour=False, everything=True).render("api", line)) == 1
    uvicorn_warning = json.dumps(uvicorn | {"level": "warning", "message": "Invalid HTTP request"})
    assert PLAIN.render("api", uvicorn_warning)


def test_the_broker_log4j_lines_are_read_and_its_info_is_chatter() -> None:
    info = "[2026-12-03 03:06:01,234] INFO [KafkaRaftServer nodeId=1] started (kafka.Kafka)"
    warn = "[2026-12-03 03:06:02,000] WARN [Log partition=x] slow fsync (kafka.log.UnifiedLog)"
    assert PLAIN.render("kafka", info) == []
    assert PLAIN.render("kafka", warn) == [
        "kafka      | 03:06:02 warning [Log partition=x] slow fsync"
    ]
    entry = parse(info)
    assert entry is not None and entry.logger == "kafka.Kafka" and entry.level == "info"


def test_other_lines_are_shown_as_they_are_and_blank_ones_not() -> None:
    assert PLAIN.render("calculator", "Traceback (most recent call last):") == [
        "calculator | Traceback (most recent call last):"
    ]
    assert PLAIN.render("api", "{not json") == ["api        | {not json"]
    assert PLAIN.render("api", "   ") == []


def test_long_and_spaced_values_stay_one_readable_line() -> None:
    (shown,) = PLAIN.render("projector", _json("x", partitions="a[0] b[1]", error="e" * 200))
    assert 'partitions="a[0] b[1]"' in shown
    assert "error=" + "e" * 79 + "…" in shown
    (listed,) = PLAIN.render("calculator", _json("jobs served", job_ids=["a", "b"]))
    assert listed.endswith("job_ids=a,b")


def test_the_ready_line_stands_out_and_parts_have_their_own_colours() -> None:
    coloured = Renderer(colour=True)
    ready = coloured.render("pi-jobs", record("ready on http://127.0.0.1:3000", ready=True))
    assert ready[0].endswith("\033[1;32mready on http://127.0.0.1:3000\033[0m")
    assert "ready=" not in ready[0]
    api, calculator = (coloured.render(p, _json("x"))[0] for p in ("api", "calculator"))
    assert api.split("|")[0] != calculator.split("|")[0]
    assert "\033[" not in PLAIN.render("pi-jobs", record("ready", ready=True))[0]


def test_records_of_make_run_are_shaped_like_the_services_lines() -> None:
    line = json.loads(record("kafka is ready", "warning", port=9092))
    assert line.keys() >= {"time", "level", "service", "message"}
    assert (line["service"], line["level"], line["port"]) == ("pi-jobs", "warning", 9092)
    assert parse(record("x")) is not None


class _Stream(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self._terminal = terminal

    def isatty(self) -> bool:
        return self._terminal


@pytest.mark.parametrize(
    ("setting", "terminal", "readable"),
    [
        (None, True, True),
        (None, False, False),
        ("auto", True, True),
        ("json", True, False),
        ("JSON", True, False),
        ("text", False, True),
    ],
)
def test_readable_on_a_terminal_unless_told(
    setting: str | None, terminal: bool, readable: bool
) -> None:
    assert readable_wanted(setting, _Stream(terminal)) is readable


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="PI_JOBS_LOG_FORMAT"):
        readable_wanted("pretty", _Stream(True))
