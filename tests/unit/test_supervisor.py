"""make run's supervisor, driven by a fake clock and fake processes."""

from dataclasses import dataclass, field
from itertools import count

from deploy.supervisor import (
    MAX_BACKOFF_SECONDS,
    STABLE_AFTER_SECONDS,
    Part,
    Supervisor,
)

_pids = count(100)


@dataclass
class FakeProcess:
    pid: int = field(default_factory=lambda: next(_pids))
    code: int | None = None

    def poll(self) -> int | None:
        return self.code


@dataclass
class World:
    now: float = 0.0
    said: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    processes: dict[str, FakeProcess] = field(default_factory=dict)
    refuse_to_start: set[str] = field(default_factory=set)

    def part(self, name: str) -> Part:
        def start() -> FakeProcess:
            if name in self.refuse_to_start:
                raise OSError("port 3000 is in use")
            self.started.append(name)
            self.processes[name] = FakeProcess()
            return self.processes[name]

        return Part(name, start=start, stop=lambda: self.stopped.append(name))

    def supervisor(self, *names: str) -> Supervisor:
        supervisor = Supervisor([self.part(n) for n in names], self.said.append, lambda: self.now)
        for name in names:
            supervisor.start(name)
        return supervisor

    def crash(self, name: str, code: int = -9) -> None:
        self.processes[name].code = code

    def advance(self, supervisor: Supervisor, seconds: float) -> None:
        """Let time pass in small steps, as the real loop does."""
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + 0.2)
            supervisor.tick()


def states(supervisor: Supervisor) -> dict[str, str]:
    return {s.name: s.state for s in supervisor.status()}


def test_a_crashed_part_is_started_again_after_a_doubling_backoff() -> None:
    world = World()
    supervisor = world.supervisor("kafka", "calculator", "api")
    restart_delays = []
    for _ in range(3):
        world.crash("calculator")
        supervisor.tick()
        crashed_at, starts = world.now, len(world.started)
        while len(world.started) == starts:
            world.advance(supervisor, 0.2)
        restart_delays.append(round(world.now - crashed_at))
    assert restart_delays == [1, 2, 4]
    assert states(supervisor) == {"kafka": "running", "calculator": "running", "api": "running"}
    assert world.started.count("api") == 1  # the others were left alone
    assert "calculator was killed by signal 9: starting it again in 1 s" in world.said


def test_a_crash_loop_leaves_the_part_down_and_the_rest_serving() -> None:
    world = World()
    supervisor = world.supervisor("calculator", "api")
    for _ in range(5):
        world.crash("calculator", code=1)
        world.advance(supervisor, 8.5)  # within a minute, whatever the backoff
    assert states(supervisor) == {"calculator": "failed", "api": "running"}
    starts = world.started.count("calculator")
    world.advance(supervisor, 300)
    assert world.started.count("calculator") == starts  # left down
    assert "make restart PART=calculator" in world.said[-1]
    # Started by hand, it gets a fresh count.
    supervisor.start("calculator")
    world.crash("calculator")
    world.advance(supervisor, 1.2)
    assert states(supervisor)["calculator"] == "running"


def test_exits_far_apart_are_no_loop_and_a_stable_part_backs_off_from_one_second() -> None:
    world = World()
    supervisor = world.supervisor("projector")
    for _ in range(8):  # never 5 within a minute: restarted every time, backing off more
        world.crash("projector")
        world.advance(supervisor, MAX_BACKOFF_SECONDS + 1)
        assert states(supervisor)["projector"] == "running"
    assert world.said[-2].endswith(f"starting it again in {MAX_BACKOFF_SECONDS:g} s")
    world.advance(supervisor, STABLE_AFTER_SECONDS + 1)
    world.crash("projector")
    supervisor.tick()
    assert world.said[-1].endswith("starting it again in 1 s")


def test_a_part_that_cannot_start_is_tried_again_like_a_crashed_one() -> None:
    world = World()
    supervisor = world.supervisor("kafka", "api")
    world.refuse_to_start.add("api")
    world.crash("api")
    world.advance(supervisor, 1.2)
    assert "api could not be started (port 3000 is in use)" in world.said[-1]
    world.refuse_to_start.clear()
    world.advance(supervisor, 2.2)
    assert states(supervisor)["api"] == "running"


def test_stopping_goes_in_reverse_order() -> None:
    world = World()
    supervisor = world.supervisor("kafka", "projector", "calculator", "downloader", "api")
    supervisor.stop_all()
    assert world.stopped == ["api", "downloader", "calculator", "projector", "kafka"]
    assert set(states(supervisor).values()) == {"stopped"}
