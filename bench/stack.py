"""The system a benchmark measures: a broker and the four services on free ports, in a temporary
directory, each part logging to a file there."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.kafka.local_broker import LocalBroker
from deploy.local_stack import LocalStack


@contextmanager
def running_stack(
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[LocalBroker, LocalStack]]:
    """The broker and the stack, ready; everything stopped and removed on leaving."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalBroker.on_free_ports(Path(tmp) / "kafka") as broker,
    ):
        stack = LocalStack.on_free_ports(
            broker.bootstrap_servers, Path(tmp), log_to_files=True, extra_env=extra_env or {}
        )
        stack.start()
        try:
            stack.wait_ready()
            yield broker, stack
        finally:
            stack.stop()
