"""What the local servers (Kafka broker, cluster, PostgreSQL) share: start, wait until ready,
stop, and use as a context manager that stops them whatever happens."""

from __future__ import annotations

import signal
import subprocess
from types import TracebackType
from typing import Self


class LocalServer:
    """A context manager: start() and wait_ready() on entry, stop() on exit or failure."""

    def start(self) -> None:
        raise NotImplementedError

    def wait_ready(self, timeout: float = 60) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 20) -> None:
        raise NotImplementedError

    def _when_ready(self) -> None:
        """Anything to set up once the server answers."""

    def __enter__(self) -> Self:
        try:
            self.start()
            self.wait_ready()
            self._when_ready()
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
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(self.stop_signal)

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
