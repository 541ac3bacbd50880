"""One checkpoint file: a key and a few integers, checked when read.

Layout: MAGIC, the key line, the count of numbers, each number as its length and its
gmpy2.to_binary bytes (length 0: no number), then the CRC-32 of everything before it.
A file is written to a temporary name, fsynced and renamed, so a reader sees a whole file
or none; a file torn or changed anyway fails its check and is ignored, never trusted.
"""

import contextlib
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import gmpy2

from services.calculator.chudnovsky import Mpz

MAGIC = b"pi-jobs checkpoint 1\n"
_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_WRITE_SLICE = 1 << 26  # checksum and write piecewise: no copy of a number's bytes

Warn = Callable[[str], None]


class UnreadableCheckpoint(ValueError):
    """The file is missing, torn, corrupt or for another key."""


def encoded_size(numbers: Sequence[Mpz | None]) -> int:
    """About the bytes `numbers` take in a file (for the size bound, before writing)."""
    return sum(8 + (0 if n is None else n.bit_length() // 8 + 8) for n in numbers) + 256


def bytes_on_disk(paths: Sequence[Path]) -> int:
    """The bytes the files take now; one that the run's other process has replaced or
    removed since it was listed counts as none."""
    total = 0
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


def write_numbers(path: Path, key: str, numbers: Sequence[Mpz | None]) -> int:
    """Write atomically; returns the file's size."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    crc = 0
    try:
        with temporary.open("wb") as out:

            def put(data: bytes | memoryview) -> None:
                nonlocal crc
                crc = zlib.crc32(data, crc)
                out.write(data)

            put(MAGIC + key.encode() + b"\n" + _LENGTH.pack(len(numbers)))
            for number in numbers:
                data = b"" if number is None else gmpy2.to_binary(number)
                put(_LENGTH.pack(len(data)))
                view = memoryview(data)
                for start in range(0, len(view), _WRITE_SLICE):
                    put(view[start : start + _WRITE_SLICE])
                del view, data
            out.write(_CRC.pack(crc))
            out.flush()
            os.fsync(out.fileno())
        size = temporary.stat().st_size
        temporary.rename(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    sync_directory(path.parent)
    return size


def read_numbers(path: Path, key: str) -> list[Mpz | None]:
    """The numbers of a whole, intact file written for `key`, else UnreadableCheckpoint."""
    try:
        with path.open("rb") as source:
            return _read(source, key)
    except OSError as error:
        raise UnreadableCheckpoint(f"{path.name}: {error.strerror or error}") from None
    except (struct.error, ValueError) as error:
        raise UnreadableCheckpoint(f"{path.name}: {error}") from None


def _read(source: BinaryIO, key: str) -> list[Mpz | None]:
    crc = 0
    file_size = os.fstat(source.fileno()).st_size

    def take(size: int) -> bytes:
        nonlocal crc
        if size > file_size:  # a corrupt length: never allocate for it
            raise ValueError("truncated")
        data = source.read(size)
        if len(data) != size:
            raise ValueError("truncated")
        crc = zlib.crc32(data, crc)
        return data

    header = MAGIC + key.encode() + b"\n"
    if take(len(header)) != header:
        raise ValueError("not a checkpoint of this computation")
    (count,) = _LENGTH.unpack(take(_LENGTH.size))
    if count > 16:
        raise ValueError("corrupt header")
    numbers: list[Mpz | None] = []
    for _ in range(count):
        (length,) = _LENGTH.unpack(take(_LENGTH.size))
        numbers.append(gmpy2.from_binary(take(length)) if length else None)
    expected = crc
    (stored,) = _CRC.unpack(source.read(_CRC.size).ljust(_CRC.size, b"\0"))
    if stored != expected or source.read(1):
        raise ValueError("checksum mismatch")
    return numbers


def sync_directory(directory: Path) -> None:
    """A rename is durable once its directory is synced."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
