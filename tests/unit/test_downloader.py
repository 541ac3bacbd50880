"""The downloader's own /readyz: the view readable, compressed digits writable."""

from pathlib import Path

import httpx

from services.downloader.app import create_app
from services.shared.sqlite_view import SqliteView
from services.shared.zip_cache import ZipCache


async def readyz(view: SqliteView, cache: ZipCache) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(view, cache))
    async with httpx.AsyncClient(transport=transport, base_url="http://downloader") as client:
        return await client.get("/readyz")


async def test_ready_with_its_view_and_cache_else_503_saying_what_is_missing(
    tmp_path: Path,
) -> None:
    view = SqliteView(tmp_path / "view.sqlite3", writer=True)
    ready = await readyz(view, ZipCache(tmp_path / "zips", 1 << 20))
    assert (ready.status_code, ready.json()) == (200, {"success": True})

    (tmp_path / "a-file").touch()
    answer = await readyz(view, ZipCache(tmp_path / "a-file" / "zips", 1 << 20))
    assert answer.status_code == 503
    assert answer.json()["success"] is False
    assert "zip cache" in answer.json()["error"] and "cannot be created" in answer.json()["error"]
    view.close()
