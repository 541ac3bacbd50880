"""What the local servers (Kafka broker, cluster, PostgreSQL) share: start, wait until ready,
stop, and use as a context manager that stops them whatever happens; the end of a log to say why
one failed, polling a check against a deadline, and their `python -m ... run` command lines."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, ClassVar, Self

from deploy import REPO_ROOT
from services.shared.runtime import die_with_parent


def log_tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log, to say why a server failed; "" before it exists."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def poll_until(
    check: Callable[[], tuple[bool, str]], timeout: float, interval: float = 0.1
) -> tuple[bool, str]:
    """Ask `check` (done, and if not, why) every `interval` seconds until it is done or `timeout`
    has passed; its last answer. `check` raises to give up early (a process that exited)."""
    deadline = time.monotonic() + timeout
    while True:
        done, why = check()
        if done or time.monotonic() > deadline:
            return done, why
        time.sleep(interval)


class LocalServer:
    """A context manager: start() and wait_ready() on entry, stop() on exit or failure."""

    def start(self) -> None:
        raise NotImplementedError

    def wait_ready(self, timeout: float = 60) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 20) -> None:
        raise NotImplementedError

    def interrupt(self, hard: bool = False) -> None:
        """Ask the server to shut down without waiting (`hard`: kill it)."""
        raise NotImplementedError

    def wait_exited(self) -> None:
        """Block until the server exits on its own (or is interrupted)."""
        raise NotImplementedError

    def _when_ready(self) -> None:
        """Anything to set up once the server answers."""

    def start_and_wait(self) -> None:
        self.start()
        self.wait_ready()
        self._when_ready()

    def __enter__(self) -> Self:
        try:
            self.start_and_wait()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalProcessServer(LocalServer):
    """A server that is one child process, asked to stop by `stop_signal`, ready once
    `readiness()` says so; its failures are `error`s naming it `name`, with its log's end."""

    name: ClassVar[str]
    error: ClassVar[type[RuntimeError]]
    process: subprocess.Popen[bytes] | None
    stop_signal: signal.Signals = signal.SIGTERM

    def readiness(self) -> tuple[bool, str]:
        """Whether the server answers as its clients need now, and if not, why."""
        raise NotImplementedError

    def _log_tail(self) -> str:
        """The end of its logs, to say why it failed."""
        return ""

    def _check_not_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            raise self.error(f"{self.name} already running")

    def _launch(self, command: Sequence[str], log_path: Path | None, **options: Any) -> None:
        """Start the process, its output appended to `log_path` (None: this terminal's). In a
        process group of its own, so a Ctrl-C reaches only whoever runs it; it dies with us."""
        with contextlib.ExitStack() as files:
            output = files.enter_context(log_path.open("ab")) if log_path else None
            self.process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                process_group=0,
                # After any change of user: a change of credentials clears the death signal.
                preexec_fn=die_with_parent,
                **options,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        """Return once readiness() says ready; raise `error` if it exits or `timeout` passes."""
        process = self.process
        if process is None:
            raise self.error(f"{self.name} not started")

        def ready_or_exited() -> tuple[bool, str]:
            if (code := process.poll()) is not None:
                raise self.error(f"{self.name} exited with code {code}:\n{self._log_tail()}")
            return self.readiness()

        ready, why = poll_until(ready_or_exited, timeout)
        if not ready:
            raise self.error(
                f"{self.name} not ready after {timeout:g}s ({why}):\n{self._log_tail()}"
            )

    def terminate(self) -> None:
        """Ask the server to shut down without waiting."""
        self.interrupt()

    def interrupt(self, hard: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if hard else self.stop_signal)

    def wait_exited(self) -> None:
        if self.process is not None:
            self.process.wait()

    def stop(self, timeout: float = 20) -> None:
        if self.process is None:
            return
        self.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def run_in_foreground(
    server: LocalServer, name: str, where: Callable[[], str], errors: tuple[type[Exception], ...]
) -> int:
    """`python -m ... run`: start the server, say where it is ready, and wait until it exits or
    SIGINT/SIGTERM stops it (a second signal kills it). 0 when stopped by a signal."""
    signals: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signals.append(signum)
        server.interrupt(hard=len(signals) > 1)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.start_and_wait()
    except errors as error:
        server.stop()
        if signals:
            return 0
        raise SystemExit(f"{name}: {error}") from None
    if not signals:
        print(f"{name} ready on {where()}", flush=True)
        server.wait_exited()
    server.stop()
    if signals:
        return 0
    print(f"{name} exited unexpectedly", file=sys.stderr)
    return 1


def command_line(
    module: str,
    setup: tuple[str, str] | None,
    run_help: str,
    data_dir: tuple[str, str],
    ports: dict[str, tuple[str, int]],
) -> argparse.ArgumentParser:
    """`python -m <module>`: its `setup` command (name, help) if any, and `run` with --data-dir
    (`data_dir`: the variable that sets it, and its default under var/) and each port option
    (option: the variable that sets it, and its default)."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    commands = parser.add_subparsers(dest="command", required=True)
    if setup is not None:
        commands.add_parser(setup[0], help=setup[1])
    run = commands.add_parser("run", help=run_help)
    variable, under_var = data_dir
    run.add_argument("--data-dir", default=os.environ.get(variable, REPO_ROOT / "var" / under_var))
    for option, (variable, default) in ports.items():
        run.add_argument(option, type=int, default=int(os.environ.get(variable, default)))
    return parser
