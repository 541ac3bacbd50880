"""The `pi-jobs` console script as a subprocess against all services as real processes."""

import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from deploy.kafka.local_broker import free_port
from deploy.local_stack import LocalStack
from tests.support import reference_pi_text, wait_until

REPO = Path(__file__).resolve().parents[2]
UNKNOWN = "0123456789abcdef0123456789abcdef"
BIG = 20_000_000  # long enough to be cancelled while it is in progress


def command() -> list[str]:
    """The installed console script, else the module (before `make install` knows the script)."""
    script = Path(sys.executable).parent / "pi-jobs"
    return [str(script)] if script.exists() else [sys.executable, "-m", "client.cli"]


def environment(stack: LocalStack) -> dict[str, str]:
    return {**os.environ, "PI_JOBS_URL": stack.url, "PYTHONPATH": str(REPO)}


def pi_jobs(
    stack: LocalStack, *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *args],
        env=environment(stack),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def status_of(stack: LocalStack, job_id: str) -> dict[str, Any]:
    done = pi_jobs(stack, "status", job_id, "--json")
    assert done.returncode == 0, done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def test_submit_wait_download_then_status_and_list(stack: LocalStack, tmp_path: Path) -> None:
    done = pi_jobs(stack, "submit", "1000", "--wait", "--download", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "nothing but errors on stderr when it is not a terminal"
    job_id, saved = done.stdout.splitlines()
    assert len(job_id) == 32
    assert Path(saved) == tmp_path / f"digits_of_pi_{job_id}.zip"
    with zipfile.ZipFile(saved) as archive:
        assert archive.namelist() == [f"digits_of_pi_{job_id}.txt"]
        assert archive.read(archive.namelist()[0]).decode() == reference_pi_text(1000)
    assert [p.name for p in tmp_path.iterdir()] == [Path(saved).name], "no temporary file left"

    status = status_of(stack, job_id)
    assert (status["job_id"], status["num"], status["status"]) == (job_id, 1000, "complete")
    human = pi_jobs(stack, "status", job_id)
    assert human.returncode == 0
    assert "status:           complete" in human.stdout.splitlines()

    listed = pi_jobs(stack, "list", "--json", "--status", "complete")
    assert listed.returncode == 0, listed.stderr
    assert job_id in [job["job_id"] for job in json.loads(listed.stdout)["jobs"]]
    table = pi_jobs(stack, "list", "--limit", "5")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:2] == ["JOB_ID", "STATUS"]
    assert any(line.startswith(job_id) for line in table.stdout.splitlines())

    again = pi_jobs(stack, "download", job_id, "-o", str(tmp_path / "again.zip"), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["path"] == str(tmp_path / "again.zip")
    assert zipfile.ZipFile(tmp_path / "again.zip").read(f"digits_of_pi_{job_id}.txt") == (
        reference_pi_text(1000).encode()
    )


def test_submit_json_and_the_same_idempotency_key_gives_the_same_job(stack: LocalStack) -> None:
    key = f"cli-{time.time_ns()}"
    first = pi_jobs(stack, "submit", "40", "--json", "--idempotency-key", key)
    second = pi_jobs(stack, "submit", "40", "--json", "--idempotency-key", key)
    assert first.returncode == second.returncode == 0, (first.stderr, second.stderr)
    assert json.loads(first.stdout)["job_id"] == json.loads(second.stdout)["job_id"]
    other_num = pi_jobs(stack, "submit", "41", "--idempotency-key", key)
    assert other_num.returncode == 4, other_num.stderr
    assert other_num.stderr.startswith("pi-jobs: ") and other_num.stderr.count("\n") == 1


def on_terminal(
    stack: LocalStack, *args: str, stdout_too: bool = False
) -> tuple[int, str, str | None]:
    """Run the CLI with stderr (and `stdout_too`, stdout) on a terminal: its exit code, what
    the terminal showed, and stdout when it was not the terminal."""
    controller, terminal = pty.openpty()
    drawn: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                return
            if not chunk:
                return
            drawn.append(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        process = subprocess.Popen(
            [*command(), *args],
            env={**environment(stack), "TERM": "xterm", "COLUMNS": "120"},
            stdout=terminal if stdout_too else subprocess.PIPE,
            stderr=terminal,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        out, _ = process.communicate(timeout=300)
    finally:
        os.close(terminal)
        reader.join(timeout=10)
        os.close(controller)
    return process.returncode, b"".join(drawn).decode(errors="replace"), out


def test_progress_bar_on_a_terminal(stack: LocalStack, tmp_path: Path) -> None:
    """With stderr on a terminal the wait and the download draw bars (and still succeed)."""
    code, screen, out = on_terminal(stack, "submit", "200000", "--download", str(tmp_path))
    assert code == 0 and out is not None, screen
    job_id, saved = out.splitlines()
    assert "100%" in screen, screen
    assert "200,000 digits" in screen
    assert f"digits_of_pi_{job_id}.zip" in screen  # the download's bar
    # The bar knows the size (the download has a Content-Length): "12.3/97.7 kB", never "/?".
    assert re.search(r"\d/\d+\.\d kB", screen) and "/?" not in screen, screen
    assert "SHA-256 of the digits verified" in screen
    assert zipfile.ZipFile(saved).read(f"digits_of_pi_{job_id}.txt")[-10:] == (
        reference_pi_text(200_000)[-10:].encode()
    )


def test_a_person_at_a_terminal_reads_the_saved_file_once(
    stack: LocalStack, tmp_path: Path
) -> None:
    done = pi_jobs(stack, "submit", "3000", "--wait")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    code, screen, _ = on_terminal(stack, "download", job_id, "-o", str(tmp_path), stdout_too=True)
    assert code == 0, screen
    name = f"digits_of_pi_{job_id}.zip"
    words = [
        line
        for line in re.split(r"[\r\n]+", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen))
        if name in line and "kB" not in line  # not the progress bar's redraws
    ]
    assert words == [f"saved {tmp_path / name} (SHA-256 of the digits verified)"], screen


def test_cancel_a_big_job_while_it_runs(stack: LocalStack, tmp_path: Path) -> None:
    waiter = subprocess.Popen(
        [*command(), "submit", str(BIG), "--wait"],
        env=environment(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert waiter.stdout is not None
        job_id = waiter.stdout.readline().strip()
        assert len(job_id) == 32, waiter.stderr.read() if waiter.stderr else ""
        wait_until(
            lambda: status_of(stack, job_id)["status"] == "in_progress", 120, "the big job to run"
        )

        cancelled = pi_jobs(stack, "cancel", job_id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout == f"{job_id} cancelled\n"

        _, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 1, err
        assert err == f"pi-jobs: job {job_id} cancelled\n"
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()

    assert status_of(stack, job_id)["status"] == "cancelled"
    again = pi_jobs(stack, "cancel", job_id, "--json")
    assert again.returncode == 4
    assert again.stdout == ""
    assert again.stderr.startswith("pi-jobs: ") and "cancelled" in again.stderr
    not_complete = pi_jobs(stack, "download", job_id, cwd=tmp_path)
    assert not_complete.returncode == 3, not_complete.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_jobs_exit_3(stack: LocalStack, tmp_path: Path) -> None:
    for args in (
        ["status", UNKNOWN],
        ["download", UNKNOWN],
        ["cancel", UNKNOWN],
        ["status", "../x"],
    ):
        done = pi_jobs(stack, *args, cwd=tmp_path)
        assert done.returncode == 3, (args, done.stderr)
        assert done.stdout == ""
        assert done.stderr.startswith("pi-jobs: ") and done.stderr.count("\n") == 1
        if UNKNOWN in args:
            assert done.stderr == f"pi-jobs: no job with id {UNKNOWN!r}\n"
    assert list(tmp_path.iterdir()) == []


def test_bad_n_exits_2_whether_argparse_or_the_api_refuses_it(stack: LocalStack) -> None:
    local = pi_jobs(stack, "submit", "abc")
    assert local.returncode == 2
    assert local.stderr.startswith("pi-jobs: argument N:") and local.stderr.count("\n") == 1

    too_big = pi_jobs(stack, "submit", "9" * 20)  # the API's 422, whatever its maximum
    assert too_big.returncode == 2, too_big.stdout
    assert too_big.stderr.startswith("pi-jobs: num must be a whole number from 1 to ")
    assert too_big.stderr.endswith(f", got {'9' * 20}\n")


def test_no_service_exits_5(stack: LocalStack) -> None:
    done = pi_jobs(stack, "--url", f"http://127.0.0.1:{free_port()}", "list")
    assert done.returncode == 5
    assert done.stderr.startswith("pi-jobs: cannot reach http://127.0.0.1:")
    assert done.stderr.count("\n") == 1
