"""`make run`'s handling of its parts' output (deploy/part_output.py), on real child processes:
what they write through the pipe reaches their log file and, rendered, the terminal."""

import io
import json
import re
import sys
from pathlib import Path

import pytest

from deploy import part_output
from deploy.kafka.local_broker import REPO_ROOT
from deploy.log_lines import Renderer
from deploy.part_output import PartOutput, Terminal
from deploy.processes import spawn

# A service's start as make run saw it: uvicorn's chatter, aiokafka's retried coordinator error,
# a line about a job, and a line that is not JSON.
_SERVICE = """
import logging
from services.shared.logs import configure_logging

configure_logging("api")
logging.getLogger("uvicorn.error").info("Uvicorn running on http://h:1 (Press CTRL+C to quit)")
logging.getLogger("aiokafka.consumer.group_coordinator").error(
    "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError"
)
logging.getLogger("services.api.jobs").info("job requested", extra={"job_id": "01a2", "num": 12})
print("not a log line", flush=True)
"""
_ENV = {"PYTHONPATH": str(REPO_ROOT)}


def _run_child(output: PartOutput, part: str, code: str) -> None:
    child = spawn([sys.executable, "-c", code], _ENV, pipe=True)
    assert child.stdout is not None
    output.drain(part, child.stdout)
    assert child.wait(timeout=60) == 0
    output.close()


def test_a_service_is_shown_readably_and_its_file_keeps_every_json_line(tmp_path: Path) -> None:
    terminal = io.StringIO()
    output = PartOutput(tmp_path, Terminal(terminal, Renderer(colour=False)).show)
    _run_child(output, "api", _SERVICE)
    shown = terminal.getvalue().splitlines()
    assert len(shown) == 2, shown
    assert re.fullmatch(r"api        \| \d\d:\d\d:\d\d job requested  job_id=01a2 num=12", shown[0])
    assert shown[1] == "api        | not a log line"
    *logged, last = (tmp_path / "api.log").read_text().splitlines()
    levels = [json.loads(line)["level"] for line in logged]
    assert levels == ["info", "debug", "info"]  # the coordinator's retry is no error
    assert last == "not a log line"


def test_without_a_renderer_the_lines_are_shown_as_written(tmp_path: Path) -> None:
    terminal = io.StringIO()
    output = PartOutput(tmp_path, Terminal(terminal, None).show)
    _run_child(output, "api", _SERVICE)
    assert terminal.getvalue() == (tmp_path / "api.log").read_text()


def test_a_child_writing_far_more_than_a_pipe_holds_never_waits(tmp_path: Path) -> None:
    output = PartOutput(tmp_path, Terminal(io.StringIO(), None).show)
    _run_child(output, "calculator", "for i in range(50_000): print('x' * 100, i)")
    assert len((tmp_path / "calculator.log").read_text().splitlines()) == 50_000


def test_a_line_that_cannot_be_shown_does_not_stop_the_reading(tmp_path: Path) -> None:
    def show(part: str, line: str) -> None:
        if line == "1":
            raise RuntimeError("a renderer's bug")

    output = PartOutput(tmp_path, show)
    _run_child(output, "projector", "for i in range(3): print(i)")
    assert (tmp_path / "projector.log").read_text() == "0\n1\n2\n"


def test_a_closed_terminal_loses_nothing_of_the_files(tmp_path: Path) -> None:
    closed = io.StringIO()
    closed.close()
    terminal = Terminal(closed, Renderer(colour=False))
    output = PartOutput(tmp_path, terminal.show)
    output.write("api", b"still kept")
    output.close()
    assert terminal.gone.is_set()
    assert (tmp_path / "api.log").read_text() == "still kept\n"


def test_a_large_log_is_moved_aside_and_started_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(part_output, "ROTATE_BYTES", 100)
    output = PartOutput(tmp_path, lambda part, line: None)
    for i in range(12):
        output.write("api", f"line {i:04d}\n".encode())  # 10 bytes each
    output.close()
    assert (tmp_path / "api.log.1").read_text().count("\n") == 10
    assert (tmp_path / "api.log").read_text() == "line 0010\nline 0011\n"
