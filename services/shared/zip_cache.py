"""Each num's digits, compressed once and kept as a file: downloads are then served from it.

The digits of pi never change, so neither do the deflate data of "3." and num decimals. The
downloader builds a file per num on the first download; every later download of any job with
that num (by the downloader, or by an API process on the same host) reads it. The directory is
bounded by size: the least recently used files go first, and a missing file is simply built again.

A file is a fixed header (magic, CRC-32, sizes, SHA-256 of the text) then the raw deflate data.
It is written under a temporary name and renamed into place, so a reader finds a whole file or
none; a file whose size disagrees with its header is ignored and rebuilt.
"""

import contextlib
import hashlib
import logging
import os
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from services.shared.events import Radix
from services.shared.zip_layout import Deflated, deflater

log = logging.getLogger(__name__)

_MAGIC = b"PIJOBSZ1"
_HEADER = struct.Struct("<8sIQQ32s")  # magic, CRC-32, text size, deflate size, SHA-256
HEADER_SIZE = _HEADER.size


@dataclass(frozen=True)
class CompressedDigits:
    """An open cache file: its deflate data starts at HEADER_SIZE. Close it when done."""

    fd: int
    deflated: Deflated
    sha256: str

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class ZipCache:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self._directory = directory
        self._max_bytes = max_bytes

    def _path(self, num: int, radix: Radix) -> Path:
        return self._directory / (f"{num}.deflate" if radix == 10 else f"{num}.hex.deflate")

    def open(self, num: int, radix: Radix = 10) -> CompressedDigits | None:
        """The num's file if it is there and whole; marks it as just used."""
        path = self._path(num, radix)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            digits = _read_header(fd)
            if digits is None:
                log.warning("ignoring a damaged compressed-digits file", extra={"path": str(path)})
                os.close(fd)
                return None
            with contextlib.suppress(OSError):
                os.utime(fd)  # its "last used" time, for eviction
            return digits
        except BaseException:
            os.close(fd)
            raise

    def build(self, num: int, text: Iterable[bytes], radix: Radix = 10) -> CompressedDigits:
        """Compress `text` (the num's "3." and digits) into the cache; then make room."""
        self._directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self._directory, prefix=f".{num}.", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(bytes(HEADER_SIZE))
                deflated, sha256 = _compress(text, out)
                out.seek(0)
                out.write(_HEADER.pack(_MAGIC, deflated.crc32, deflated.text_size,
                                       deflated.deflate_size, bytes.fromhex(sha256)))  # fmt: skip
            os.replace(temporary, self._path(num, radix))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        self._evict(keep=self._path(num, radix))
        built = self.open(num, radix)
        if built is None:
            raise OSError(f"the compressed digits of {num} vanished as they were written")
        return built

    def _evict(self, keep: Path) -> None:
        """Delete the least recently used files until the rest fit (a reader keeps its copy)."""
        files = []
        for path in self._directory.glob("*.deflate"):
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self._max_bytes:
                break
            if path != keep:
                path.unlink(missing_ok=True)
                total -= size
                log.info("evicted compressed digits", extra={"path": path.name, "bytes": size})

    def problem(self) -> str | None:
        """Why files cannot be built here, if they cannot."""
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return f"the zip cache {self._directory} cannot be created ({error.strerror})"
        if not os.access(self._directory, os.W_OK | os.X_OK):
            return f"the zip cache {self._directory} is not writable"
        return None

    def remove_leftovers(self) -> None:
        """Temporary files of builds cut short (a crash): never served, only in the way."""
        for path in self._directory.glob(".*.part"):
            path.unlink(missing_ok=True)


def _compress(text: Iterable[bytes], out: BinaryIO) -> tuple[Deflated, str]:
    compressor = deflater()
    crc, size, digest = 0, 0, hashlib.sha256()
    deflate_size = 0
    for piece in text:
        crc = zlib.crc32(piece, crc)
        size += len(piece)
        digest.update(piece)
        data = compressor.compress(piece)
        deflate_size += out.write(data)
    deflate_size += out.write(compressor.flush())
    return Deflated(crc, size, deflate_size), digest.hexdigest()


def _read_header(fd: int) -> CompressedDigits | None:
    raw = os.pread(fd, HEADER_SIZE, 0)
    if len(raw) != HEADER_SIZE:
        return None
    magic, crc, text_size, deflate_size, sha256 = _HEADER.unpack(raw)
    if magic != _MAGIC or os.fstat(fd).st_size != HEADER_SIZE + deflate_size:
        return None
    return CompressedDigits(fd, Deflated(crc, text_size, deflate_size), sha256.hex())


def read_deflate(digits: CompressedDigits, start: int, end: int, piece: int) -> Iterator[bytes]:
    """Bytes [start, end) of the deflate data, in pieces of at most `piece` bytes."""
    position = start
    while position < end:
        data = os.pread(digits.fd, min(piece, end - position), HEADER_SIZE + position)
        if not data:
            raise OSError("the compressed-digits file ended early")
        position += len(data)
        yield data
