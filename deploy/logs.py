"""`make logs`: follow the logs of every part of `make run`, the broker's included, or of one.

    python -m deploy.logs            # make logs
    python -m deploy.logs api        # make logs PART=api (everything it logs, chatter included)

`make run` writes each part's output to <data dir>/logs/<part>.log (its own messages to
pi-jobs.log); the broker keeps its own logs in <data dir>/kafka/logs. On a terminal they are
shown as `make run` shows them; elsewhere, or with PI_JOBS_LOG_FORMAT=json, as they were written.
"""

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from deploy.kafka.local_broker import REPO_ROOT
from deploy.local_stack import SERVICES
from deploy.log_lines import SUPERVISOR, Renderer, parse, readable_wanted
from deploy.part_output import Terminal

_POLL_SECONDS = 0.25
_BACKLOG_BYTES = 256 * 1024  # where the last lines of a log are looked for


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


def _in_time_order(backlogs: list[tuple[str, list[str]]]) -> list[tuple[str, str]]:
    """The parts' last lines interleaved by their time (a line without one keeps its place)."""
    keyed = []
    for part, lines in backlogs:
        when = 0.0
        for line in lines:
            entry = parse(line)
            when = entry.time.timestamp() if entry and entry.time else when
            keyed.append((when, part, line))
    keyed.sort(key=lambda item: item[0])
    return [(part, line) for _, part, line in keyed]


def follow(
    data_dir: Path,
    part: str | None,
    show: Callable[[str, str], None],
    backlog: int = 10,
    stop: threading.Event | None = None,
) -> None:
    """Show each log's last `backlog` lines, then every new line, until `stop` is set."""
    stop = stop or threading.Event()
    followed: dict[Path, tuple[str, FollowedFile]] = {}

    def files() -> list[tuple[str, Path]]:
        found = log_files(data_dir).items()
        return [(name, path) for name, paths in found if part in (None, name) for path in paths]

    starting = []
    for name, path in files():
        followed[path] = (name, FollowedFile(path))
        starting.append((name, followed[path][1].backlog(backlog)))
    for name, line in _in_time_order(starting):
        show(name, line)
    try:
        while not stop.wait(_POLL_SECONDS):
            for name, path in files():
                if path not in followed:
                    followed[path] = (name, FollowedFile(path))
            for name, followed_file in followed.values():
                for line in followed_file.new_lines():
                    show(name, line)
    finally:
        for _, followed_file in followed.values():
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
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the way to stop following
        follow(data_dir, args.part, terminal.show, args.lines, stop=terminal.gone)
    return 0


if __name__ == "__main__":
    sys.exit(main())
