"""Runs the downloader (http://127.0.0.1:3002 by default; the public address proxies to it)."""

import uvicorn

from services.downloader.app import create_app
from services.shared.http_server import server_options
from services.shared.logs import configure_logging
from services.shared.settings import DownloaderSettings, ViewSettings, ZipCacheSettings
from services.shared.view_stores import open_view
from services.shared.zip_cache import ZipCache


def main() -> None:
    configure_logging("downloader")
    settings = DownloaderSettings()
    zips = ZipCacheSettings()
    cache = ZipCache(zips.pi_jobs_zip_cache_dir, zips.pi_jobs_zip_cache_bytes)
    app = create_app(open_view(ViewSettings().view_url), cache)
    uvicorn.run(
        app,
        host=settings.pi_jobs_downloader_host,
        port=settings.pi_jobs_downloader_port,
        **server_options(),
    )


if __name__ == "__main__":
    main()
