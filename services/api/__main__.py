"""Runs the API on the public address (http://localhost:3000 by default)."""

import uvicorn

from services.api.app import create_app
from services.shared.logs import configure_logging
from services.shared.settings import ApiSettings, KafkaSettings, ViewSettings
from services.shared.view_stores import open_view


def main() -> None:
    configure_logging("api")
    api = ApiSettings()
    app = create_app(api, KafkaSettings(), open_view(ViewSettings().view_url))
    uvicorn.run(app, host=api.pi_jobs_host, port=api.pi_jobs_port, log_config=None)


if __name__ == "__main__":
    main()
