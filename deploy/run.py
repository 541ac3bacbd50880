"""`make run`: the broker and the four services in the foreground; Ctrl-C stops all of it."""

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from deploy.kafka.local_broker import REPO_ROOT, BrokerError, LocalBroker
from deploy.local_stack import LocalStack


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    data_dir = Path(os.environ.get("PI_JOBS_DATA_DIR", REPO_ROOT / "var"))
    # SIGTERM (to the process group, say) stops everything the way Ctrl-C does; SIGINT is set
    # explicitly because a shell starting us in the background leaves it ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)

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
    try:
        if broker is not None:
            print("starting kafka ...", flush=True)
            broker.start()
            broker.wait_ready(timeout=120)
        stack.start()
        stack.wait_ready(timeout=120)
        print(f"pi-jobs is ready on {stack.url}  (Ctrl-C stops everything)", flush=True)
        while True:
            time.sleep(0.5)
            for name, process in stack.processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with code {process.returncode}", file=sys.stderr)
                    return 1
    except KeyboardInterrupt:
        return 0
    except (BrokerError, RuntimeError, TimeoutError) as error:
        print(f"pi-jobs: {error}", file=sys.stderr)
        return 1
    finally:
        # Let the shutdown finish: make passes our signal on, so a second one is on its way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stopping ...", flush=True)
        stack.stop()
        if broker is not None:
            broker.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
