"""A minute of the random-kill soak (make soak runs five): every part, the broker included, is
killed with -9 at random under a stream of clients, and nothing acknowledged may be lost."""

from pathlib import Path

from tests.soak import soak


def test_a_minute_of_random_kills_loses_nothing(tmp_path: Path) -> None:
    report = soak(tmp_path / "soak", seconds=60)
    print("\n".join(report.lines()))
    assert report.held, "\n".join(report.lines())
    assert sum(report.kills.values()) >= 5, report.kills
    assert len(report.tally.acknowledged) >= 20 and report.tally.downloads_checked >= 10
