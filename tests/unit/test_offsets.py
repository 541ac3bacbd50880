from services.calculator.offsets import OffsetTracker


def test_an_offset_is_committable_once_every_record_before_it_is_done() -> None:
    offsets = OffsetTracker()
    for offset in (10, 11, 12):
        offsets.begin("p0", offset)
    assert offsets.committable() == {"p0": 10}
    offsets.end("p0", 12)  # a small job finished before the big one at 10
    offsets.end("p0", 11)
    assert offsets.committable() == {"p0": 10}
    offsets.end("p0", 10)
    assert offsets.committable() == {"p0": 13}


def test_partitions_are_independent_and_can_be_forgotten() -> None:
    offsets = OffsetTracker()
    offsets.begin("p0", 0)
    offsets.begin("p1", 7)
    offsets.end("p1", 7)
    assert offsets.committable() == {"p0": 0, "p1": 8}
    offsets.forget("p0")
    offsets.end("p0", 0)  # the job of a revoked partition ends later: nothing to commit
    assert offsets.committable() == {"p1": 8}
