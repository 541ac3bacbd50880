"""Keeps the parts of `make run` running: one that exits unexpectedly is started again after a
backoff (1 s, doubling, at most 30 s); one that crashes in a loop (5 times in 60 s) is reported
and left down while the rest keep serving. The loop is plain and clock-driven (`tick`), so the
rules are tested without real processes.

Why not supervisord: it restarts a crashed program without bound once it has run a few
seconds (its retry limit counts failed starts only), knows nothing of the order here (the broker
answers before the services start) or of our readiness, and would be one more daemon with its
own configuration to generate. What we need is this file.
"""

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
CRASH_LOOP_EXITS = 5
CRASH_LOOP_WINDOW_SECONDS = 60.0
# A part that has run this long without exiting starts its backoff from the beginning again.
STABLE_AFTER_SECONDS = 60.0

State = Literal["running", "restarting", "failed", "stopped"]


class Process(Protocol):
    """What the supervisor needs of a running part (subprocess.Popen has it)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...


@dataclass
class Part:
    """One supervised part: how to start it (returning its process) and how to stop it."""

    name: str
    start: Callable[[], Process]
    stop: Callable[[], None]
    # Replaces a running part without a gap in service (the API's processes, one at a time);
    # None: `restart` stops it, then starts it.
    reload: Callable[[], None] | None = None
    process: Process | None = None
    state: State = "stopped"
    started_at: float = 0.0
    restart_at: float = 0.0
    backoff: float = FIRST_BACKOFF_SECONDS
    exits: deque[float] = field(default_factory=deque)
    restarts: int = 0


@dataclass(frozen=True)
class PartStatus:
    name: str
    state: State
    pid: int | None
    up_seconds: float | None
    restarts: int
    exits_last_minute: int


class Supervisor:
    def __init__(
        self,
        parts: list[Part],
        say: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._parts = {part.name: part for part in parts}
        self._say = say
        self._clock = clock

    @property
    def names(self) -> list[str]:
        return list(self._parts)

    def start(self, name: str) -> None:
        """Start (or restart) a part by hand: its crash count starts afresh."""
        part = self._parts[name]
        if part.process is not None and part.process.poll() is None:
            part.stop()
        part.exits.clear()
        part.backoff = FIRST_BACKOFF_SECONDS
        self._launch(part)  # if it cannot start, it is tried again like a crashed part

    def restart(self, name: str) -> str:
        """What `make restart PART=name` does; says how it went about it."""
        part = self._parts[name]
        if part.reload is not None and part.state == "running":
            part.reload()
            return f"{name}: replacing its processes one at a time"
        self.start(name)
        return f"{name} started again"

    def stop(self, name: str) -> None:
        part = self._parts[name]
        part.state = "stopped"
        part.stop()
        part.process = None

    def stop_all(self) -> None:
        """In reverse order of starting: the API first, so nothing new is accepted meanwhile."""
        for name in reversed(self._parts):
            self.stop(name)

    def tick(self) -> None:
        """Notice exits and start what is due: call it a few times a second."""
        now = self._clock()
        for part in self._parts.values():
            if part.state == "running":
                self._check(part, now)
            elif part.state == "restarting" and now >= part.restart_at:
                part.restarts += 1
                if self._launch(part):
                    self._say(f"{part.name} is running again")

    def status(self) -> list[PartStatus]:
        now = self._clock()
        return [
            PartStatus(
                name=part.name,
                state=part.state,
                pid=part.process.pid if part.state == "running" and part.process else None,
                up_seconds=now - part.started_at if part.state == "running" else None,
                restarts=part.restarts,
                exits_last_minute=sum(1 for t in part.exits if now - t < CRASH_LOOP_WINDOW_SECONDS),
            )
            for part in self._parts.values()
        ]

    def _launch(self, part: Part) -> bool:
        part.started_at = self._clock()
        try:
            part.process = part.start()
        except Exception as error:  # counts as an exit: tried again after the backoff
            self._exited(part, part.started_at, f"could not be started ({error})")
            return False
        part.state = "running"
        return True

    def _check(self, part: Part, now: float) -> None:
        assert part.process is not None
        code = part.process.poll()
        if code is None:
            if now - part.started_at >= STABLE_AFTER_SECONDS:
                part.backoff = FIRST_BACKOFF_SECONDS
            return
        self._exited(
            part, now, f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        )

    def _exited(self, part: Part, now: float, how: str) -> None:
        part.exits.append(now)
        while part.exits and now - part.exits[0] >= CRASH_LOOP_WINDOW_SECONDS:
            part.exits.popleft()
        if len(part.exits) >= CRASH_LOOP_EXITS:
            part.state = "failed"
            self._say(
                f"{part.name} {how}, its {len(part.exits)}th exit in "
                f"{CRASH_LOOP_WINDOW_SECONDS:.0f} s: left down while the rest keep serving. "
                f"`make restart PART={part.name}` starts it again."
            )
            return
        part.state = "restarting"
        part.restart_at = now + part.backoff
        self._say(f"{part.name} {how}: starting it again in {part.backoff:g} s")
        part.backoff = min(part.backoff * 2, MAX_BACKOFF_SECONDS)
