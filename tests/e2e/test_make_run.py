"""`make run` as a person meets it, on free ports in a directory of its own: one readable line per
event on its terminal, every part's log kept and followed by `make logs`, `make status` showing
each part, a second `make run` refused, and `make stop` returning once everything has stopped."""

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from deploy.kafka.local_broker import REPO_ROOT, free_port
from deploy.local_stack import SERVICES
from tests.e2e.helpers import submit, wait_complete
from tests.support import wait_until

_PART_PREFIX = re.compile(r"(pi-jobs|kafka|projector|calculator|downloader|api) +\| ")


class MakeRun:
    """`python -m deploy.run` as `make run` starts it, its terminal a file read back."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.api_port = free_port()
        self.env = {
            **os.environ,
            "PI_JOBS_DATA_DIR": str(data_dir),
            "PI_JOBS_PORT": str(self.api_port),
            "PI_JOBS_DOWNLOADER_PORT": str(free_port()),
            "PI_JOBS_CALCULATOR_OPS_PORT": str(free_port()),
            "PI_JOBS_PROJECTOR_OPS_PORT": str(free_port()),
            "KAFKA_PORT": str(free_port()),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "PI_JOBS_LOG_FORMAT": "text",  # what a terminal gets
        }
        self.env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        data_dir.mkdir(parents=True)
        self.terminal_path = data_dir.parent / "terminal.txt"
        with self.terminal_path.open("wb") as terminal:
            self.process = self.start(terminal, "deploy.run")

    def start(self, output: IO[bytes], module: str, *args: str) -> "subprocess.Popen[bytes]":
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=self.env,
            cwd=REPO_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def call(self, module: str, *args: str) -> "subprocess.CompletedProcess[str]":
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )

    def terminal(self) -> str:
        return self.terminal_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[MakeRun]:
    running = MakeRun(tmp_path / "var")
    yield running
    running.kill()


def _follow_logs(make_run: MakeRun, path: Path, *part: str) -> "subprocess.Popen[bytes]":
    with path.open("wb") as output:
        return make_run.start(output, "deploy.logs", *part)


def test_make_run_reads_well_and_answers_other_terminals(make_run: MakeRun) -> None:
    wait_until(lambda: "ready on http" in make_run.terminal(), 240, "make run to be ready")
    with httpx.Client(base_url=f"http://127.0.0.1:{make_run.api_port}", timeout=60) as client:
        job_id = submit(client, 12)
        wait_complete(client, job_id)
    wait_until(lambda: "job is complete" in make_run.terminal(), 30, "the projector's line")

    lines = make_run.terminal().splitlines()
    assert all(_PART_PREFIX.match(line) for line in lines), lines
    assert not [line for line in lines if "{" in line or "CTRL+C" in line or " error " in line]
    requested = rf"\| \S+ job requested  job_id={job_id} num=12 radix=10$"
    assert any(re.search(requested, s) for s in lines)
    logs = make_run.data_dir / "logs"
    for part in ("pi-jobs", *SERVICES):
        for line in (logs / f"{part}.log").read_text().splitlines():
            assert json.loads(line)["message"] is not None, line

    again = make_run.call("deploy.run")
    assert again.returncode == 1
    assert "already running" in again.stderr and "make stop" in again.stderr

    status = make_run.call("deploy.control", "status")
    assert status.returncode == 0, status.stderr
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:]}
    assert set(rows) == {"kafka", *SERVICES}
    assert all(row[1] == "running" and row[2].isdigit() for row in rows.values()), rows
    assert rows["kafka"][-1] == "yes" and rows["api"][-1] == "yes", status.stdout

    every_part = make_run.data_dir.parent / "logs.txt"
    broker = make_run.data_dir.parent / "kafka-logs.txt"
    followers = [_follow_logs(make_run, every_part), _follow_logs(make_run, broker, "kafka")]
    try:
        wait_until(lambda: f"job_id={job_id}" in every_part.read_text(), 30, "make logs")
        wait_until(lambda: "kafka      | " in broker.read_text(), 30, "make logs PART=kafka")
    finally:
        for follower in followers:
            follower.terminate()
            follower.wait(10)

    stopped = make_run.call("deploy.control", "stop")
    assert stopped.returncode == 0 and "pi-jobs stopped" in stopped.stdout, stopped
    assert make_run.process.wait(10) == 0
    assert make_run.terminal().splitlines()[-1].endswith(" stopped")
    assert make_run.call("deploy.control", "stop").returncode == 0  # nothing left to stop
