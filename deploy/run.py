"""`make run`: the broker and the four services in the foreground, each kept running.

A part that exits unexpectedly is started again (deploy/supervisor.py); `make status`,
`make restart PART=...` and `make stop` reach this process through deploy/control.py. Ctrl-C
or SIGTERM stops everything in order; a second signal while stopping changes nothing.
"""

import os
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from deploy.control import ControlServer, Handler, answering, socket_path
from deploy.kafka.local_broker import REPO_ROOT, BrokerError, LocalBroker
from deploy.local_stack import SERVICES, LocalStack
from deploy.supervisor import Part, Process, Supervisor

_TICK_SECONDS = 0.2


class _Stopping:
    """Set by SIGINT, SIGTERM or `make stop`; the main loop then stops everything in order."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.event.set()


def _say(line: str) -> None:
    print(f"pi-jobs: {line}", file=sys.stderr, flush=True)


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


def _handler(supervisor: Supervisor, lock: threading.Lock, stopping: _Stopping) -> Handler:
    def handle(words: list[str]) -> dict[str, Any]:
        match words:
            case ["status"]:
                with lock:
                    return {"ok": True, "parts": [asdict(s) for s in supervisor.status()]}
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
    control_path = socket_path(data_dir)
    if answering(control_path):
        _say("already running here (`make status` shows it, `make stop` stops it)")
        return 1
    stopping = _Stopping()
    # SIGINT is set explicitly because a shell starting us in the background leaves it ignored.
    signal.signal(signal.SIGTERM, stopping.on_signal)
    signal.signal(signal.SIGINT, stopping.on_signal)

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None
    if not external:
        broker = LocalBroker(
            data_dir / "kafka",
            port=int(os.environ.get("KAFKA_PORT", 9092)),
            controller_port=int(os.environ.get("KAFKA_CONTROLLER_PORT", 9093)),
        )
    stack = LocalStack(
        bootstrap_servers=external or (broker.bootstrap_servers if broker else ""),
        data_dir=data_dir,
        api_port=int(os.environ.get("PI_JOBS_PORT", 3000)),
        downloader_port=int(os.environ.get("PI_JOBS_DOWNLOADER_PORT", 3002)),
    )
    parts = ([_broker_part(broker)] if broker else []) + [
        _service_part(stack, name) for name in SERVICES
    ]
    supervisor = Supervisor(parts, say=_say)
    lock = threading.Lock()
    control = ControlServer(control_path, _handler(supervisor, lock, stopping))
    try:
        if broker is not None:
            _say("starting kafka ...")
            with lock:
                supervisor.start("kafka")
            _wait_for_broker(broker, stopping)
        with lock:
            for name in SERVICES:
                supervisor.start(name)
        ready_by = time.monotonic() + 120
        ready = False
        while not stopping.event.wait(_TICK_SECONDS):
            with lock:
                supervisor.tick()
            if not ready:
                ready = stack.readiness()[0]
                if ready:
                    print(f"pi-jobs is ready on {stack.url}  (Ctrl-C stops everything)", flush=True)
                elif time.monotonic() > ready_by:
                    _say(f"not ready after 120 s: {stack.readiness()[1]}")
                    ready_by = float("inf")
        return 0
    except BrokerError as error:
        _say(str(error))
        return 1
    finally:
        print("stopping ...", flush=True)
        control.close()
        with lock:
            supervisor.stop_all()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
