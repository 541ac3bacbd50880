"""`make logs` (deploy/logs.py): following files as they grow, are moved aside or cut."""

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy.log_lines import record
from deploy.logs import FollowedFile, Follower, log_files, rotate_large
from tests.support import wait_until


def _append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def test_new_lines_come_whole_and_once(tmp_path: Path) -> None:
    path = tmp_path / "api.log"
    followed = FollowedFile(path)
    assert followed.backlog(10) == [] and followed.new_lines() == []
    _append(path, "one\ntw")
    assert followed.new_lines() == ["one"]
    _append(path, "o\nthree\n")
    assert followed.new_lines() == ["two", "three"]
    assert followed.new_lines() == []
    followed.close()


def test_the_backlog_is_the_last_lines_then_only_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "api.log"
    path.write_text("".join(f"{i}\n" for i in range(100)))
    followed = FollowedFile(path)
    assert followed.backlog(3) == ["97", "98", "99"]
    _append(path, "100\n")
    assert followed.new_lines() == ["100"]
    followed.close()


def test_a_file_moved_aside_is_read_to_its_end_then_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "api.log"
    path.write_text("old\n")
    followed = FollowedFile(path)
    followed.backlog(10)
    _append(path, "last of the old\n")
    path.replace(tmp_path / "api.log.1")
    assert followed.new_lines() == []  # no new file yet
    path.write_text("first of the new\n")
    assert followed.new_lines() == ["last of the old", "first of the new"]
    path.write_text("")  # cut
    _append(path, "after the cut\n")
    assert followed.new_lines() == ["after the cut"]
    followed.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "logs").mkdir()
    (tmp_path / "kafka" / "logs").mkdir(parents=True)
    return tmp_path


Shown = list[tuple[str, str]]


def _following(data_dir: Path, part: str | None, run: Callable[[Follower], None]) -> Shown:
    """What a Follower of `part` (None: every part) shows, as it shows it."""
    shown: Shown = []

    def files() -> dict[str, list[Path]]:
        return {p: paths for p, paths in log_files(data_dir).items() if part in (None, p)}

    run(Follower(files, lambda p, line: shown.append((p, line)), backlog=10))
    return shown


def test_every_part_is_followed_the_broker_and_late_comers_included(
    data_dir: Path, run_follower: Callable[[Follower], None]
) -> None:
    logs = data_dir / "logs"
    _append(logs / "api.log", '{"time": "2026-12-03T03:00:02Z", "message": "second"}\n')
    _append(logs / "pi-jobs.log", '{"time": "2026-12-03T03:00:01Z", "message": "first"}\n')
    every = _following(data_dir, None, run_follower)
    wait_until(lambda: len(every) == 2, 10, "the backlog")
    assert [part for part, _ in every] == ["pi-jobs", "api"]  # in time order
    _append(data_dir / "kafka" / "logs" / "server.log", "[2026-12-03 03:00:03,000] INFO up (k)\n")
    _append(logs / "calculator-2.log", record("a second calculator") + "\n")
    wait_until(lambda: len(every) == 4, 10, "the broker's line and a new part's")
    assert {part for part, _ in every[2:]} == {"kafka", "calculator-2"}


def test_one_part_alone(data_dir: Path, run_follower: Callable[[Follower], None]) -> None:
    api = _following(data_dir, "api", run_follower)
    _append(data_dir / "logs" / "projector.log", "not this\n")
    _append(data_dir / "logs" / "api.log", "this\n")
    wait_until(lambda: api, 10, "the api's line")
    assert api == [("api", "this")]


def test_lines_written_between_two_looks_are_shown_in_time_order(data_dir: Path) -> None:
    shown: list[str] = []
    follower = Follower(lambda: log_files(data_dir), lambda p, _: shown.append(p), backlog=0)
    logs = data_dir / "logs"
    _append(logs / "calculator.log", '{"time": "2026-12-03T03:00:02Z", "message": "computing"}\n')
    _append(logs / "api.log", '{"time": "2026-12-03T03:00:01Z", "message": "job requested"}\n')
    stopped = threading.Event()
    stopped.set()
    follower.follow(stopped)  # one last look, then returns
    assert shown == ["api", "calculator"]  # not the order the files are read in


def test_a_large_log_is_copied_aside_and_emptied_for_its_writer(tmp_path: Path) -> None:
    path = tmp_path / "api.log"
    with path.open("a") as writer:  # as a service holds its log: appending
        writer.write("x" * 100 + "\n")
        writer.flush()
        rotate_large([path, tmp_path / "missing.log"], limit=200)
        assert not (tmp_path / "api.log.1").exists()
        rotate_large([path], limit=50)
        writer.write("after\n")
        writer.flush()
    assert (tmp_path / "api.log.1").read_text() == "x" * 100 + "\n"
    assert path.read_text() == "after\n"


def test_the_parts_are_known_before_they_log(tmp_path: Path) -> None:
    assert set(log_files(tmp_path)) >= {"pi-jobs", "kafka", "api", "calculator", "projector"}
