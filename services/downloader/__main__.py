"""Runs the downloader (http://127.0.0.1:3002 by default; the public address proxies to it)."""

import uvicorn

from services.downloader.app import create_app
from services.shared.logs import configure_logging
from services.shared.settings import DownloaderSettings, ViewSettings
from services.shared.view_stores import open_view


def main() -> None:
    configure_logging("downloader")
    settings = DownloaderSettings()
    app = create_app(open_view(ViewSettings().view_url))
    uvicorn.run(
        app,
        host=settings.pi_jobs_downloader_host,
        port=settings.pi_jobs_downloader_port,
        log_config=None,
    )


if __name__ == "__main__":
    main()
