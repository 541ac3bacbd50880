"""`make run`: the broker and the four services in the foreground, each kept running.

A part that exits unexpectedly is started again (deploy/supervisor.py); `make status`,
`make restart PART=...` and `make stop` reach this process through deploy/control.py. Ctrl-C
or SIGTERM stops everything in order; a second signal while stopping changes nothing.

Each service writes its output to its log file under `<data dir>/logs`, and this process its own
messages to pi-jobs.log there; a thread follows those files as `make logs` does and shows their
lines on stderr: readable on a terminal, as written (JSON) elsewhere (deploy/logs.py). Following
files rather than piping the services' output means a terminal that stops reading (Ctrl-S, or
Ctrl-Z on make run) never stops a service.
"""

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from deploy import REPO_ROOT, start_checks
from deploy.control import ControlServer, Handler, socket_path
from deploy.kafka.local_broker import BrokerError, LocalBroker
from deploy.local_stack import SERVICES, LocalStack
from deploy.log_lines import SUPERVISOR, Renderer, readable_wanted, record
from deploy.logs import Follower, Terminal, log_files, rotate_large
from deploy.supervisor import Part, PartStatus, Process, Supervisor

_TICK_SECONDS = 0.2
_ROTATE_CHECK_SECONDS = 60


class _Stopping:
    """Set by SIGINT, SIGTERM or `make stop`; the main loop then stops everything in order."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.event.set()


class _OwnLog:
    """make run's own messages, JSON lines in pi-jobs.log like a part's (said from two threads)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a")
        self._lock = threading.Lock()

    def say(self, message: str, level: str = "info", **fields: Any) -> None:
        with self._lock:
            self._file.write(record(message, level, **fields) + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def _terminal() -> Terminal:
    readable = readable_wanted(os.environ.get("PI_JOBS_LOG_FORMAT"), sys.stderr)
    colour = readable and sys.stderr.isatty() and "NO_COLOR" not in os.environ
    return Terminal(sys.stderr, Renderer(colour) if readable else None)


def _own_logs(data_dir: Path) -> dict[str, list[Path]]:
    """What make run shows: its parts' logs, not the broker's (log4j keeps those, at INFO)."""
    return {part: paths for part, paths in log_files(data_dir).items() if part != "kafka"}


def _service_part(stack: LocalStack, name: str) -> Part:
    def start() -> Process:
        stack.start_replica(name, name)
        return stack.processes[name]

    def reload() -> None:  # the API's supervising process replaces its workers on SIGHUP
        stack.processes[name].send_signal(signal.SIGHUP)

    return Part(
        name, start=start, stop=lambda: stack.stop(name), reload=reload if name == "api" else None
    )


def _broker_part(broker: LocalBroker) -> Part:
    def start() -> Process:
        broker.start()
        assert broker.process is not None
        return broker.process

    return Part("kafka", start=start, stop=broker.stop)


Readiness = Callable[[str], tuple[bool, str]]


def _with_readiness(parts: list[PartStatus], readiness: Readiness) -> list[dict[str, Any]]:
    """Each part's status, and for a running one whether it is ready (asked all at once)."""
    running = [part.name for part in parts if part.state == "running"]
    with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
        found = dict(zip(running, pool.map(readiness, running), strict=True))
    return [
        {
            **asdict(part),
            "ready": found[part.name][0] if part.name in found else None,
            "why_not_ready": found[part.name][1] if part.name in found else None,
        }
        for part in parts
    ]


def _handler(
    supervisor: Supervisor, lock: threading.Lock, stopping: _Stopping, readiness: Readiness
) -> Handler:
    def handle(words: list[str]) -> dict[str, Any]:
        match words:
            case ["ping"]:
                return {"ok": True}
            case ["status"]:
                with lock:
                    parts = supervisor.status()
                return {"ok": True, "parts": _with_readiness(parts, readiness)}
            case ["restart", _] if stopping.event.is_set():
                return {"ok": False, "error": "pi-jobs is stopping"}
            case ["restart", name] if name in supervisor.names:
                with lock:
                    message = supervisor.restart(name)
                return {"ok": True, "message": message}
            case ["restart", name]:
                return {"ok": False, "error": f"no part {name!r}: {', '.join(supervisor.names)}"}
            case ["stop"]:
                stopping.event.set()
                return {"ok": True, "message": "stopping pi-jobs"}
        return {"ok": False, "error": f"unknown command {' '.join(words)!r}"}

    return handle


def _wait_for_broker(broker: LocalBroker, stopping: _Stopping, timeout: float = 120) -> None:
    """Until the broker answers, or a signal says stop (it is checked twice a second)."""
    deadline = time.monotonic() + timeout
    while not stopping.event.is_set():
        try:
            broker.wait_ready(timeout=0.5)
            return
        except BrokerError:
            exited = broker.process is None or broker.process.poll() is not None
            if exited or time.monotonic() > deadline:
                raise


def main() -> int:
    data_dir = Path(os.environ.get("PI_JOBS_DATA_DIR", REPO_ROOT / "var"))
    ports = start_checks.chosen_ports(os.environ)
    if refusal := start_checks.why_not_start(data_dir, ports):
        print(refusal, file=sys.stderr)
        return 1
    try:
        terminal = _terminal()
    except ValueError as error:
        print(f"pi-jobs: {error}", file=sys.stderr)
        return 2
    # Positioned at the logs' ends before anything is said: only this run's lines are shown.
    follower = Follower(lambda: _own_logs(data_dir), terminal.show, backlog=0)
    shown = threading.Event()
    showing = threading.Thread(target=follower.follow, args=(shown,), name="terminal", daemon=True)
    showing.start()
    own_log = _OwnLog(data_dir / "logs" / f"{SUPERVISOR}.log")
    try:
        return _run(data_dir, ports, own_log)
    finally:
        own_log.close()
        shown.set()
        showing.join(5)


def _run(data_dir: Path, ports: dict[str, int], own_log: _OwnLog) -> int:
    say = own_log.say
    stopping = _Stopping()
    # SIGINT is set explicitly because a shell starting us in the background leaves it ignored.
    signal.signal(signal.SIGTERM, stopping.on_signal)
    signal.signal(signal.SIGINT, stopping.on_signal)

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None
    if not external:
        port, controller_port = ports["KAFKA_PORT"], ports["KAFKA_CONTROLLER_PORT"]
        broker = LocalBroker(data_dir / "kafka", port=port, controller_port=controller_port)
    stack = LocalStack(
        bootstrap_servers=external or (broker.bootstrap_servers if broker else ""),
        data_dir=data_dir,
        api_port=ports["PI_JOBS_PORT"],
        downloader_port=ports["PI_JOBS_DOWNLOADER_PORT"],
        calculator_ops_port=ports["PI_JOBS_CALCULATOR_OPS_PORT"],
        projector_ops_port=ports["PI_JOBS_PROJECTOR_OPS_PORT"],
        log_to_files=True,
    )
    parts = ([_broker_part(broker)] if broker else []) + [
        _service_part(stack, name) for name in SERVICES
    ]
    supervisor = Supervisor(parts, say=say)
    lock = threading.Lock()

    def readiness(name: str) -> tuple[bool, str]:
        if name == "kafka" and broker is not None:
            return broker.readiness()
        return stack.readiness(name, timeout=2)

    handler = _handler(supervisor, lock, stopping, readiness)
    control = ControlServer(socket_path(data_dir), handler)
    try:
        if broker is not None:
            say(f"starting kafka (its log: {broker.log_dir / 'server.log'}) ...")
            with lock:
                supervisor.start("kafka")
            _wait_for_broker(broker, stopping)
            say(f"kafka is ready on {broker.bootstrap_servers}")
        with lock:
            for name in SERVICES:
                supervisor.start(name)
        ready_by = time.monotonic() + 120
        ready = False
        rotate_at = 0.0
        while not stopping.event.wait(_TICK_SECONDS):
            with lock:
                supervisor.tick()
            if time.monotonic() >= rotate_at:
                rotate_large((data_dir / "logs").glob("*.log"))
                rotate_at = time.monotonic() + _ROTATE_CHECK_SECONDS
            if not ready:
                ready = stack.readiness()[0]
                if ready:
                    say(
                        f"ready on {stack.url}  (Ctrl-C stops everything; `make` lists the rest)",
                        ready=True,
                    )
                elif time.monotonic() > ready_by:
                    say(f"not ready after 120 s: {stack.readiness()[1]}", "warning")
                    ready_by = float("inf")
        return 0
    except BrokerError as error:
        say(str(error), "error")
        return 1
    finally:
        say("stopping ...")
        with lock:
            supervisor.stop_all()
        control.close()  # last: until everything is down, `make run` says it is still running
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
