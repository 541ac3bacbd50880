"""Progress bars on stderr, drawn only when stderr is a terminal."""

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TransferSpeedColumn,
)

from client.api import JobStatus


def terminal_console() -> Console | None:
    """A console on stderr when it is a terminal; None means: draw nothing."""
    return Console(stderr=True) if sys.stderr.isatty() else None


def format_eta(seconds: object) -> str:
    if not isinstance(seconds, int | float) or seconds < 0:
        return ""
    whole = round(seconds)
    if whole < 60:
        return f"ETA {whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"ETA {minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"ETA {hours} h {minutes:02d} min"


@contextmanager
def job_progress(console: Console | None, num: int) -> Iterator[Callable[[JobStatus], None]]:
    """A bar for a job: an update function to call with each status the API gives."""
    if console is None:
        yield lambda _: None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[state]}"),
        TextColumn("{task.fields[eta]}"),
    )
    with Progress(*columns, console=console) as bars:
        task = bars.add_task(f"{num:,} digits", total=None, state="queued", eta="")

        def update(status: JobStatus) -> None:
            state = str(status.get("status"))
            progress = status.get("progress")
            if state == "complete":
                progress = 1.0
            known = isinstance(progress, int | float)
            bars.update(
                task,
                total=1.0 if known else None,
                completed=progress if isinstance(progress, int | float) else 0.0,
                state=state.replace("_", " "),
                eta=format_eta(status.get("eta_seconds")) if state == "in_progress" else "",
            )

        yield update


@contextmanager
def download_progress(
    console: Console | None, name: str, total: int | None
) -> Iterator[Callable[[int], None]]:
    """A bar by bytes: with no Content-Length it shows the bytes so far and the rate."""
    if console is None:
        yield lambda _: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with Progress(*columns, console=console) as bars:
        task = bars.add_task(name, total=total)
        yield lambda count: bars.advance(task, count)
