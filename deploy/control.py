"""Talking to a running `make run`: the state of each part, starting one again, stopping it all.

    python -m deploy.control status                # make status
    python -m deploy.control restart calculator    # make restart PART=calculator
    python -m deploy.control stop                  # make stop (returns once all is stopped)

`make run` answers on a Unix socket in its data directory (var/run/control.sock): one line of
command, one line of JSON back.
"""

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploy.local_server import poll_until

Handler = Callable[[list[str]], dict[str, Any]]


def socket_path(data_dir: Path) -> Path:
    return data_dir / "run" / "control.sock"


class ControlServer:
    """Answers commands on the socket from a thread of its own; `handle` must be thread-safe."""

    def __init__(self, path: Path, handle: Handler) -> None:
        self._path = path
        self._handle = handle
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # left by a `make run` that was killed
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.bind(str(path))
        os.chmod(path, 0o600)
        self._socket.listen(8)
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return  # closed
            with connection, connection.makefile("rwb") as stream:
                try:
                    words = stream.readline(4096).decode().split()
                    answer = self._handle(words)
                except Exception as error:  # a bad command must not stop the control thread
                    answer = {"ok": False, "error": str(error)}
                stream.write(json.dumps(answer).encode() + b"\n")

    def close(self) -> None:
        self._socket.close()
        self._path.unlink(missing_ok=True)


def ask(path: Path, *words: str, timeout: float = 60) -> dict[str, Any]:
    """Send one command; raises OSError when no `make run` answers there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(path))
        client.sendall(" ".join(words).encode() + b"\n")
        with client.makefile("rb") as stream:
            answer: dict[str, Any] = json.loads(stream.readline())
            return answer


def answering(path: Path) -> bool:
    with contextlib.suppress(OSError, ValueError):
        return bool(ask(path, "ping", timeout=5).get("ok"))
    return False


def _wait_stopped(path: Path, timeout: float = 120) -> bool:
    """Whether `make run` has stopped everything (it answers until then) within `timeout`."""
    stopped, _ = poll_until(lambda: (not answering(path), "answering"), timeout, interval=0.2)
    return stopped


def _shown_ready(part: dict[str, Any]) -> str:
    if part.get("ready") is None:
        return "-"
    return "yes" if part["ready"] else f"no: {part.get('why_not_ready') or '?'}"[:60]


def _print_status(parts: list[dict[str, Any]]) -> None:
    print(f"{'part':<12}{'state':<12}{'pid':>8}{'up':>10}{'restarts':>10}  ready")
    for part in parts:
        up = part["up_seconds"]
        shown_up = "-" if up is None else f"{up:.0f} s"
        pid = part["pid"] or "-"
        print(
            f"{part['name']:<12}{part['state']:<12}{pid:>8}{shown_up:>10}{part['restarts']:>10}"
            f"  {_shown_ready(part)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.control", description=__doc__)
    parser.add_argument("command", choices=["status", "restart", "stop"])
    parser.add_argument("part", nargs="?", help="with restart: kafka, projector, calculator, ...")
    parser.add_argument("--data-dir", default=os.environ.get("PI_JOBS_DATA_DIR", "var"))
    args = parser.parse_args(argv)
    path = socket_path(Path(args.data_dir))
    if args.command == "restart" and not args.part:
        parser.error("restart needs the part: make restart PART=calculator")
    try:
        answer = ask(path, args.command, *([args.part] if args.part else []))
    except OSError:
        print(f"pi-jobs is not running (nothing answers on {path}): `make run` starts it")
        return 0 if args.command == "stop" else 3  # nothing to stop: what was asked holds
    if not answer.get("ok"):
        print(f"pi-jobs: {answer.get('error')}", file=sys.stderr)
        return 2
    if args.command == "status":
        _print_status(answer["parts"])
        return 0
    print(answer.get("message", "done"), flush=True)
    if args.command == "stop":
        if not _wait_stopped(path):
            print("pi-jobs: still stopping after 120 s", file=sys.stderr)
            return 1
        print("pi-jobs stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
