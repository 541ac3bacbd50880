"""Which offset each partition may commit while several jobs run at once.

Jobs finish out of order; an offset is committed only when every record before it is done, so a
crash re-delivers exactly the jobs that were not finished (and maybe some that were: harmless,
every event's effect is idempotent).
"""

from collections import defaultdict
from collections.abc import Hashable


class OffsetTracker:
    def __init__(self) -> None:
        self._in_flight: defaultdict[Hashable, set[int]] = defaultdict(set)
        self._next: dict[Hashable, int] = {}

    def begin(self, partition: Hashable, offset: int) -> None:
        self._in_flight[partition].add(offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def end(self, partition: Hashable, offset: int) -> None:
        self._in_flight[partition].discard(offset)

    def committable(self) -> dict[Hashable, int]:
        """For each partition, the offset to commit: the first record not yet done."""
        return {
            partition: min(self._in_flight[partition], default=next_offset)
            for partition, next_offset in self._next.items()
        }

    def forget(self, partition: Hashable) -> None:
        """The partition went to another consumer: its unfinished jobs are its to redo."""
        self._in_flight.pop(partition, None)
        self._next.pop(partition, None)
