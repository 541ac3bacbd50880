import io
import zipfile
from datetime import datetime

from services.downloader.zipstream import zip_single_file


def test_the_zip_holds_exactly_the_pieces_given() -> None:
    pieces = [b"3.", b"1415926535" * 50_000, b"89"]
    parts = list(zip_single_file("digits.txt", datetime(2026, 3, 14, 15, 9, 26), pieces))
    assert len(parts) > 1  # produced as it goes, not at the end
    archive = zipfile.ZipFile(io.BytesIO(b"".join(parts)))
    assert archive.namelist() == ["digits.txt"]
    assert archive.read("digits.txt") == b"".join(pieces)
    assert archive.testzip() is None
    assert archive.infolist()[0].date_time == (2026, 3, 14, 15, 9, 26)
