"""The stored digits of pi, of one radix, as one flat file on this host, read through mmap.

Random access (`/v1/pi`) and search (`/v1/pi/search`) read digits at any position, often: the
view holds them as 100,000-digit chunks, a row each. This file holds the leading "3" and the
digits after the point, so a position is an offset, a range is one slice and a search is one
scan at memchr speed, with the pages shared by every process of the host. It is a cache of the
view (the log is the record): built when first needed, extended when the view holds more, never
read beyond what the view holds. Appends happen under a file lock, one chunk per write: a torn
tail (a crash mid-write) is cut off by the next process that extends the file.
"""

import asyncio
import fcntl
import logging
import mmap
import os
from pathlib import Path
from typing import Protocol

from services.shared.events import DIGITS_PER_CHUNK, Radix

log = logging.getLogger(__name__)

LEADING = b"3"


class DigitReader(Protocol):
    """What this file needs of the view (services.shared.view.ViewReader has it)."""

    reads_wait_on_network: bool

    def stored_digits(self, radix: Radix = 10) -> int: ...

    def read_digits(self, start: int, count: int, radix: Radix = 10) -> str: ...


class StoredText:
    def __init__(self, directory: Path, radix: Radix, view: DigitReader) -> None:
        self.radix = radix
        self._path = directory / f"pi-{radix}.txt"
        self._view = view
        self._map: mmap.mmap | None = None
        self._extending = asyncio.Lock()

    async def positions(self) -> int:
        """How many positions can be read now: the 3 and the stored digits (0 if none)."""
        if self._view.reads_wait_on_network:
            stored = await asyncio.to_thread(self._view.stored_digits, self.radix)
        else:
            stored = self._view.stored_digits(self.radix)
        wanted = stored + len(LEADING) if stored else 0
        if self._mapped() < wanted:
            async with self._extending:
                if self._mapped() < wanted:
                    self._map = await asyncio.to_thread(self._extend, wanted)
        return min(self._mapped(), wanted)

    def read(self, start: int, count: int) -> bytes:
        """Positions [start, start + count); positions() must have said they are there."""
        assert self._map is not None or count == 0
        return self._map[start : start + count] if self._map is not None else b""

    def find(self, pattern: bytes, limit: int, positions: int) -> tuple[list[int], int]:
        """The first `limit` positions where `pattern` starts (overlaps count), and how many
        positions were searched to find them (all `positions` when fewer were found)."""
        found: list[int] = []
        if self._map is None:
            return found, 0
        at = 0
        while len(found) < limit:
            where = self._map.find(pattern, at, positions)
            if where < 0:
                return found, positions
            found.append(where)
            at = where + 1
        return found, found[-1] + len(pattern)

    def _mapped(self) -> int:
        return len(self._map) if self._map is not None else 0

    def _extend(self, wanted: int) -> mmap.mmap:
        """Append what the view holds up to `wanted` positions (or what another process did),
        and map the whole file afresh."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                size = _whole_prefix(os.fstat(fd).st_size)
                os.ftruncate(fd, size)
                if size < wanted:
                    size = self._append(fd, size, wanted)
                return mmap.mmap(fd, size, prot=mmap.PROT_READ)
            finally:
                os.close(fd)

    def _append(self, fd: int, size: int, wanted: int) -> int:
        if size == 0:
            size = os.pwrite(fd, LEADING, 0)
        first = size
        while size < wanted:
            start = size - len(LEADING)
            count = min(DIGITS_PER_CHUNK - start % DIGITS_PER_CHUNK, wanted - size)
            digits = self._view.read_digits(start, count, self.radix).encode("ascii")
            written = os.pwrite(fd, digits, size)
            assert written == len(digits)
            size += written
        os.fsync(fd)
        log.info(
            "stored digits file extended",
            extra={"radix": self.radix, "digits": size - len(LEADING), "added": size - first},
        )
        return size


def _whole_prefix(size: int) -> int:
    """The longest prefix of a file of `size` bytes that holds the 3 and whole chunks."""
    if size <= len(LEADING):
        return 0
    return len(LEADING) + (size - len(LEADING)) // DIGITS_PER_CHUNK * DIGITS_PER_CHUNK
