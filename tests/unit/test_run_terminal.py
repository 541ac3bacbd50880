"""make run's terminal on real child processes, as deploy/run.py wires it: each child writes its
log file (deploy.processes.spawn, as LocalStack does), a Follower on a thread shows the lines."""

import io
import json
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from deploy.kafka.local_broker import REPO_ROOT
from deploy.log_lines import Renderer
from deploy.logs import Follower, Terminal
from deploy.processes import spawn
from deploy.run import _own_logs, _OwnLog
from tests.support import wait_until

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


def _run_child(data_dir: Path, part: str, code: str) -> None:
    log = data_dir / "logs" / f"{part}.log"
    child = spawn([sys.executable, "-c", code], {"PYTHONPATH": str(REPO_ROOT)}, log)
    assert child.wait(timeout=60) == 0


RunFollower = Callable[[Follower], None]


def _show(data_dir: Path, show: Callable[[str, str], None], run: RunFollower) -> None:
    """What make run does: follow its parts' logs on a thread, showing each line on `show`."""
    run(Follower(lambda: _own_logs(data_dir), show, backlog=0))


def test_a_service_is_shown_readably_and_its_file_keeps_every_json_line(
    tmp_path: Path, run_follower: RunFollower
) -> None:
    terminal = io.StringIO()
    _show(tmp_path, Terminal(terminal, Renderer(colour=False)).show, run_follower)
    own_log = _OwnLog(tmp_path / "logs" / "pi-jobs.log")
    own_log.say("starting kafka ...")
    own_log.close()
    _run_child(tmp_path, "api", _SERVICE)
    wait_until(lambda: "not a log line" in terminal.getvalue(), 10, "the child's lines")
    shown = terminal.getvalue().splitlines()
    assert len(shown) == 3, shown
    assert re.fullmatch(r"pi-jobs    \| \d\d:\d\d:\d\d starting kafka \.\.\.", shown[0])
    assert re.fullmatch(r"api        \| \d\d:\d\d:\d\d job requested  job_id=01a2 num=12", shown[1])
    assert shown[2] == "api        | not a log line"
    *logged, last = (tmp_path / "logs" / "api.log").read_text().splitlines()
    levels = [json.loads(line)["level"] for line in logged]
    assert levels == ["info", "debug", "info"]  # the coordinator's retry is no error
    assert last == "not a log line"


def test_off_a_terminal_the_lines_are_shown_as_written(
    tmp_path: Path, run_follower: RunFollower
) -> None:
    terminal = io.StringIO()
    _show(tmp_path, Terminal(terminal, None).show, run_follower)
    _run_child(tmp_path, "api", _SERVICE)
    written = (tmp_path / "logs" / "api.log").read_text()
    wait_until(lambda: terminal.getvalue() == written, 10, "every line as written")


def test_a_terminal_that_stops_reading_never_stops_a_child(
    tmp_path: Path, run_follower: RunFollower
) -> None:
    resumed = threading.Event()

    def stuck(part: str, line: str) -> None:  # Ctrl-S, say, or make run stopped by Ctrl-Z
        resumed.wait()

    _show(tmp_path, stuck, run_follower)
    try:
        _run_child(tmp_path, "calculator", "for i in range(50_000): print('x' * 100, i)")
        lines = (tmp_path / "logs" / "calculator.log").read_text().splitlines()
        assert len(lines) == 50_000
    finally:
        resumed.set()


def test_a_closed_terminal_is_noticed_not_raised() -> None:
    closed = io.StringIO()
    closed.close()
    terminal = Terminal(closed, Renderer(colour=False))
    terminal.show("api", "a line")
    assert terminal.gone.is_set()
