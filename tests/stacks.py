"""The one way tests build a stack: all four services as real processes on free ports, against
a broker the test names."""

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.local_stack import SERVICES, LocalStack


def start_stack(
    bootstrap: str,
    data_dir: Path,
    topic_prefix: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> LocalStack:
    """Started and ready (or stopped again, and the error raised)."""
    stack = LocalStack.on_free_ports(
        bootstrap,
        data_dir,
        topic_prefix=topic_prefix or f"e2e-{uuid.uuid4().hex[:12]}",
        log_to_files=True,
        extra_env=extra_env or {},
    )
    stack.start()
    try:
        stack.wait_ready(timeout=120)
    except BaseException:
        stop_stack(stack, show_logs=True)
        raise
    return stack


def stop_stack(stack: LocalStack, show_logs: bool = False) -> None:
    """Every process stopped; `show_logs`: the last lines of each service's log on stderr."""
    names = list(stack.processes) or list(SERVICES)
    stack.stop()
    if show_logs:
        for service in names:
            path = stack.log_path(service)
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {service} log (last lines) ---", *tail, sep="\n", file=sys.stderr)


@contextmanager
def stack_running(
    bootstrap: str,
    data_dir: Path,
    topic_prefix: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[LocalStack]:
    """A stack for the block, stopped after it with its logs' last lines shown."""
    stack = start_stack(bootstrap, data_dir, topic_prefix, extra_env)
    try:
        yield stack
    finally:
        stop_stack(stack, show_logs=True)
