"""`make logs`: follow the logs of every part of `make run`, the broker's included, or of one.
`make run` shows its parts' logs on its terminal the same way.

    python -m deploy.logs            # make logs
    python -m deploy.logs api        # make logs PART=api (everything it logs, chatter included)

`make run` writes each part's output to <data dir>/logs/<part>.log (its own messages to
pi-jobs.log); the broker keeps its own logs in <data dir>/kafka/logs. On a terminal they are
shown as `make run` shows them; elsewhere, or with PI_JOBS_LOG_FORMAT=json, as they were written.
"""

import argparse
import contextlib
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, TextIO

from deploy import REPO_ROOT
from deploy.local_stack import SERVICES
from deploy.log_lines import SUPERVISOR, Renderer, parse, readable_wanted

_POLL_SECONDS = 0.25
ROTATE_BYTES = 50 * 2**20
_BACKLOG_BYTES = 256 * 1024  # where the last lines of a log are looked for


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
        except (OSError, ValueError):  # closed: the log files still have it all
            self.gone.set()


def rotate_large(paths: Iterable[Path], limit: int = ROTATE_BYTES) -> None:
    """A log beyond `limit` bytes is copied to <name>.1 and emptied, as logrotate's copytruncate
    does: its writers append (O_APPEND), so they go on at its new start. A line written between
    the copy and the emptying is lost."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size > limit:
                shutil.copyfile(path, path.with_name(path.name + ".1"))
                os.truncate(path, 0)


def log_files(data_dir: Path) -> dict[str, list[Path]]:
    """Each part's log files, those not written yet included."""
    logs, broker_logs = data_dir / "logs", data_dir / "kafka" / "logs"
    files = {name: [logs / f"{name}.log"] for name in (SUPERVISOR, *SERVICES)}
    files["kafka"] = [broker_logs / "server.log", broker_logs / "kafka.out"]
    for path in sorted(logs.glob("*.log")):  # replicas: a second calculator, say
        files.setdefault(path.stem, [path])
    return files


class FollowedFile:
    """The lines added to one file since last asked, across its rotation (a new file under its
    name) or truncation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._inode = 0
        self._partial = b""

    def backlog(self, lines: int) -> list[str]:
        """Its last `lines` lines; what follows is new."""
        try:
            self._file = self.path.open("rb")
        except FileNotFoundError:
            return []
        self._inode = os.fstat(self._file.fileno()).st_ino
        size = self._file.seek(0, os.SEEK_END)
        self._file.seek(max(0, size - _BACKLOG_BYTES))
        found = self._read()
        if size > _BACKLOG_BYTES:
            found = found[1:]  # it began mid-line
        return found[-lines:] if lines > 0 else []

    def new_lines(self) -> list[str]:
        try:
            inode, size = (stat := self.path.stat()).st_ino, stat.st_size
        except FileNotFoundError:
            return []
        found: list[str] = []
        if self._file is None or inode != self._inode:
            if self._file is not None:
                found = self._read()  # the rest of the file before it was moved aside
                self._file.close()
            self._file, self._inode, self._partial = self.path.open("rb"), inode, b""
        elif size < self._file.tell():
            self._file.seek(0)
            self._partial = b""
        return found + self._read()

    def _read(self) -> list[str]:
        assert self._file is not None
        *complete, self._partial = (self._partial + self._file.read()).split(b"\n")
        return [line.decode(errors="replace") for line in complete]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _in_time_order(batches: list[tuple[str, list[str]]]) -> list[tuple[str, str]]:
    """The parts' lines interleaved by their time (a line without one keeps its place)."""
    keyed = []
    for part, lines in batches:
        when = 0.0
        for line in lines:
            entry = parse(line)
            when = entry.time.timestamp() if entry and entry.time else when
            keyed.append((when, part, line))
    keyed.sort(key=lambda item: item[0])
    return [(part, line) for _, part, line in keyed]


class Follower:
    """Shows the lines of every log `files` names (part: its files) as they are written, those
    of all parts in time order: `make logs`, and what `make run` shows on its terminal."""

    def __init__(
        self,
        files: Callable[[], dict[str, list[Path]]],
        show: Callable[[str, str], None],
        backlog: int,
    ) -> None:
        """Shows the last `backlog` lines of each log at once; what follows is new."""
        self._files = files
        self._show = show
        self._followed: dict[Path, tuple[str, FollowedFile]] = {}
        self._look(backlog)

    def _look(self, backlog: int | None = None) -> None:
        """Shows what every log has that is new (at the first look, its last `backlog` lines)."""
        batches = []
        for part, paths in self._files().items():
            for path in paths:
                if path not in self._followed:
                    self._followed[path] = (part, FollowedFile(path))
                    if backlog is not None:
                        batches.append((part, self._followed[path][1].backlog(backlog)))
                        continue
                batches.append((part, self._followed[path][1].new_lines()))
        for part, line in _in_time_order(batches):
            self._show(part, line)

    def follow(self, stop: threading.Event, poll_seconds: float = _POLL_SECONDS) -> None:
        """Until `stop` is set, and what was written by then."""
        try:
            while True:
                stopping = stop.wait(poll_seconds)
                self._look()
                if stopping:
                    return
        finally:
            for _, followed_file in self._followed.values():
                followed_file.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.logs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("part", nargs="?", help="one part: kafka, api, calculator, ...")
    parser.add_argument("--lines", type=int, default=10, help="of each log, shown first")
    parser.add_argument("--data-dir", default=os.environ.get("PI_JOBS_DATA_DIR", REPO_ROOT / "var"))
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    known = log_files(data_dir)
    if args.part is not None and args.part not in known:
        parser.error(f"no part {args.part!r}: {', '.join(known)}")
    try:
        readable = readable_wanted(os.environ.get("PI_JOBS_LOG_FORMAT"), sys.stdout)
    except ValueError as error:
        parser.error(str(error))
    colour = readable and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    renderer = Renderer(colour, everything=args.part is not None) if readable else None
    terminal = Terminal(sys.stdout, renderer)
    if not any(path.exists() for paths in known.values() for path in paths):
        print(f"no logs in {data_dir} yet (`make run` writes them): waiting", file=sys.stderr)

    def files() -> dict[str, list[Path]]:
        return {p: paths for p, paths in log_files(data_dir).items() if args.part in (None, p)}

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the way to stop following
        Follower(files, terminal.show, args.lines).follow(stop=terminal.gone)
    return 0


if __name__ == "__main__":
    sys.exit(main())
