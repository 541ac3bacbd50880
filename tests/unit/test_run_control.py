"""What `make run` answers other terminals (deploy/run.py, deploy/control.py), without its parts:
status with readiness, a second `make run` refused, ports already taken named."""

import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy import control
from deploy.control import ControlServer, socket_path
from deploy.run import _handler, _Stopping
from deploy.start_checks import ports_taken, why_not_start
from deploy.supervisor import Part, Supervisor


@dataclass
class _Process:
    pid: int

    def poll(self) -> int | None:
        return None


def _part(name: str, pid: int) -> Part:
    return Part(name, start=lambda: _Process(pid), stop=lambda: None)


def _supervisor() -> Supervisor:
    parts = [_part("kafka", 100), _part("api", 101), _part("downloader", 102)]
    supervisor = Supervisor(parts, say=lambda _: None)
    supervisor.start("kafka")
    supervisor.start("api")
    return supervisor


def _readiness(name: str) -> tuple[bool, str]:
    return (True, "ready") if name == "kafka" else (False, "the view is behind")


def test_status_says_whether_each_running_part_is_ready() -> None:
    handle = _handler(_supervisor(), threading.Lock(), _Stopping(), _readiness)
    assert handle(["ping"]) == {"ok": True}
    answer = handle(["status"])
    ready = {
        p["name"]: (p["state"], p["pid"], p["ready"], p["why_not_ready"]) for p in answer["parts"]
    }
    assert ready == {
        "kafka": ("running", 100, True, "ready"),
        "api": ("running", 101, False, "the view is behind"),
        "downloader": ("stopped", None, None, None),
    }


def test_nothing_is_started_again_once_stopping() -> None:
    stopping = _Stopping()
    handle = _handler(_supervisor(), threading.Lock(), stopping, _readiness)
    assert handle(["stop"])["ok"] and stopping.event.is_set()
    assert handle(["restart", "api"]) == {"ok": False, "error": "pi-jobs is stopping"}


def test_make_status_prints_a_row_per_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handle = _handler(_supervisor(), threading.Lock(), _Stopping(), _readiness)
    server = ControlServer(socket_path(tmp_path), handle)
    try:
        assert control.main(["status", "--data-dir", str(tmp_path)]) == 0
    finally:
        server.close()
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["part", "state", "pid", "up", "restarts", "ready"]
    assert rows[0].split()[-1] == "yes" and rows[1].endswith("no: the view is behind")
    assert rows[2].split() == ["downloader", "stopped", "-", "-", "0", "-"]


def test_a_second_make_run_is_told_that_one_runs_and_how_to_stop_it(tmp_path: Path) -> None:
    server = ControlServer(socket_path(tmp_path), lambda words: {"ok": True})
    try:
        refusal = why_not_start(tmp_path, {})
    finally:
        server.close()
    assert refusal is not None and "already running" in refusal and "`make stop`" in refusal
    assert why_not_start(tmp_path, {}) is None


def test_ports_another_program_holds_are_named_with_their_setting(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        free = _free_port()
        assert ports_taken({"PI_JOBS_PORT": held, "KAFKA_PORT": free}) == [f"{held} (PI_JOBS_PORT)"]
        refusal = why_not_start(tmp_path, {"PI_JOBS_PORT": held})
    assert refusal is not None and f"{held} (PI_JOBS_PORT)" in refusal


def test_make_stop_with_nothing_running_is_no_failure(tmp_path: Path) -> None:
    assert control.main(["stop", "--data-dir", str(tmp_path)]) == 0
    assert control.main(["status", "--data-dir", str(tmp_path)]) == 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
