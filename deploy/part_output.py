"""Where `make run` sends each part's output: appended to the part's log file (`make logs` follows
those) and shown on the terminal, rendered for a person or as it is (deploy/log_lines.py)."""

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO, TextIO

from deploy.log_lines import Renderer

# A log file this large is moved to <part>.log.1 (replacing the one before) and started afresh.
ROTATE_BYTES = 50 * 2**20


class Terminal:
    """Shows a part's lines on `stream`: rendered, or as they are when `renderer` is None."""

    def __init__(self, stream: TextIO, renderer: Renderer | None) -> None:
        self._stream = stream
        self._renderer = renderer
        self.gone = threading.Event()  # set once the stream cannot be written to

    def show(self, part: str, line: str) -> None:
        shown = [line] if self._renderer is None else self._renderer.render(part, line)
        try:
            self._stream.writelines(text + "\n" for text in shown)
            self._stream.flush()
        except (OSError, ValueError):  # closed: `make run` goes on, its log files get it all
            self.gone.set()


class PartOutput:
    """Lines of every part, written one at a time (so they never interleave) to its log file
    under `log_dir` and to `show`."""

    def __init__(self, log_dir: Path, show: Callable[[str, str], None]) -> None:
        self._log_dir = log_dir
        self._show = show
        self._files: dict[str, BinaryIO] = {}
        self._lock = threading.Lock()
        self._drains: list[threading.Thread] = []

    def log_path(self, part: str) -> Path:
        return self._log_dir / f"{part}.log"

    def drain(self, part: str, pipe: IO[bytes]) -> None:
        """Read `pipe` to its end on a thread of its own: the child never waits for a reader."""
        thread = threading.Thread(
            target=self._drain, args=(part, pipe), name=f"{part}-output", daemon=True
        )
        thread.start()
        self._drains = [t for t in self._drains if t.is_alive()] + [thread]

    def _drain(self, part: str, pipe: IO[bytes]) -> None:
        with pipe:
            for line in iter(pipe.readline, b""):
                # Whatever goes wrong with a line, reading goes on: else the child would block.
                with contextlib.suppress(Exception):
                    self.write(part, line)

    def write(self, part: str, line: bytes) -> None:
        line = line if line.endswith(b"\n") else line + b"\n"
        with self._lock:
            try:
                file = self._file(part)
                file.write(line)
                file.flush()
            except OSError:  # a full disk loses the file's copy, not the terminal's
                pass
            self._show(part, line.decode(errors="replace").rstrip("\n"))

    def _file(self, part: str) -> BinaryIO:
        file = self._files.get(part)
        if file is not None and file.tell() < ROTATE_BYTES:
            return file
        path = self.log_path(part)
        if file is not None:
            file.close()
            path.replace(path.with_name(path.name + ".1"))
        path.parent.mkdir(parents=True, exist_ok=True)
        self._files[part] = file = path.open("ab")
        return file

    def close(self, timeout: float = 5) -> None:
        """Once the parts are stopped: what their pipes still hold is written, then the files
        are closed."""
        deadline = time.monotonic() + timeout
        for thread in self._drains:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            for file in self._files.values():
                file.close()
            self._files.clear()
