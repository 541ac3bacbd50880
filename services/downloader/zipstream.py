"""A zip of one text file, produced piece by piece so memory stays flat whatever its size."""

import zipfile
from collections.abc import Iterable, Iterator
from datetime import datetime


class _Sink:
    """A write-only, unseekable file: zipfile then writes sizes in data descriptors."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._written = 0

    def write(self, data: bytes) -> int:
        self._pending += data
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = bytes(self._pending)
        self._pending.clear()
        return data


def zip_single_file(name: str, modified: datetime, pieces: Iterable[bytes]) -> Iterator[bytes]:
    sink = _Sink()
    member_info = zipfile.ZipInfo(name, date_time=modified.timetuple()[:6])
    member_info.compress_type = zipfile.ZIP_DEFLATED
    # Level 1: 6x faster than the default on digits, for a zip 6% larger. (Public as
    # ZipInfo.compress_level from Python 3.13.)
    member_info._compresslevel = 1  # type: ignore[attr-defined]
    archive = zipfile.ZipFile(sink, "w")  # type: ignore[call-overload]
    with archive, archive.open(member_info, "w", force_zip64=True) as member:
        for piece in pieces:
            member.write(piece)
            if chunk := sink.take():
                yield chunk
    yield sink.take()
