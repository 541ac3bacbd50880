"""The bytes of a zip holding one deflated text file, around deflate data made elsewhere.

The compressed digits of a given num are the same for every job, so they are made once and
kept (see zip_cache.py); a job's zip is its own small header and trailer (its file name and
time) around them. Sizes and CRC sit in a data descriptor after the data, as a streamed zip
has them, so the layout never depends on how the data was produced.
"""

import struct
import zlib
from dataclasses import dataclass
from datetime import datetime

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_DATA_DESCRIPTOR = struct.Struct("<IIII")
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
_END_OF_DIRECTORY = struct.Struct("<IHHHHIIH")

_VERSION = 20  # 2.0: deflate
_SIZES_AFTER_DATA = 0x0008  # general purpose flag bit 3
_DEFLATED = 8
# Without zip64 records, sizes and offsets must fit in 32 bits: about 4.29e9 decimals.
MAX_ZIP_BYTES = 0xFFFFFFFF


@dataclass(frozen=True)
class Deflated:
    """A text's raw deflate data (kept elsewhere) and what a zip says of it."""

    crc32: int
    text_size: int
    deflate_size: int


def dos_time(moment: datetime) -> tuple[int, int]:
    """(time, date) as zip stores them: 2-second steps, years 1980 to 2107."""
    year = min(max(moment.year, 1980), 2107)
    time = (moment.hour << 11) | (moment.minute << 5) | (moment.second // 2)
    date = ((year - 1980) << 9) | (moment.month << 5) | moment.day
    return time, date


def zip_prefix(name: str, modified: datetime) -> bytes:
    """What comes before the deflate data: the local file header."""
    encoded = name.encode("ascii")
    time, date = dos_time(modified)
    header = _LOCAL_HEADER.pack(
        0x04034B50, _VERSION, _SIZES_AFTER_DATA, _DEFLATED, time, date, 0, 0, 0, len(encoded), 0
    )
    return header + encoded


def zip_suffix(name: str, modified: datetime, data: Deflated) -> bytes:
    """What comes after the deflate data: the data descriptor and the central directory."""
    if max(data.text_size, data.deflate_size + 1024) > MAX_ZIP_BYTES:
        raise ValueError("the text is too large for a zip without zip64 records")
    encoded = name.encode("ascii")
    time, date = dos_time(modified)
    descriptor = _DATA_DESCRIPTOR.pack(0x08074B50, data.crc32, data.deflate_size, data.text_size)
    central = _CENTRAL_HEADER.pack(
        0x02014B50,
        _VERSION,
        _VERSION,
        _SIZES_AFTER_DATA,
        _DEFLATED,
        time,
        date,
        data.crc32,
        data.deflate_size,
        data.text_size,
        len(encoded),
        0,  # extra field length
        0,  # comment length
        0,  # disk number
        0,  # internal attributes
        0,  # external attributes
        0,  # offset of the local header
    )
    directory_offset = _LOCAL_HEADER.size + len(encoded) + data.deflate_size + len(descriptor)
    directory_size = len(central) + len(encoded)
    end = _END_OF_DIRECTORY.pack(0x06054B50, 0, 0, 1, 1, directory_size, directory_offset, 0)
    return descriptor + central + encoded + end


def deflater() -> "zlib._Compress":
    """Raw deflate at level 1: 6x faster than the default on digits, for a zip 6% larger."""
    return zlib.compressobj(1, zlib.DEFLATED, -15)
