"""What the local servers (Kafka broker, cluster, PostgreSQL) share: start, wait until ready,
stop, and use as a context manager that stops them whatever happens."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Self


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
    """A server that is one child process, asked to stop by `stop_signal`."""

    process: subprocess.Popen[bytes] | None
    stop_signal: signal.Signals = signal.SIGTERM

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
