"""Runs the API on the public address (http://localhost:3000 by default).

A supervising process opens the listening socket and runs `PI_JOBS_API_PROCESSES` processes that
share it. It replaces any that dies, and on SIGHUP replaces them one at a time: each new process
serves before the one it replaces stops taking connections and drains its open requests.
"""

import os
import shutil
import tempfile

import uvicorn
from uvicorn.supervisors import Multiprocess

from services.shared.http_server import server_options
from services.shared.logs import configure_logging
from services.shared.settings import ApiSettings


def main() -> None:
    configure_logging("api")
    api = ApiSettings()
    # Each process counts its own requests; /metrics adds them up from files in here.
    metrics_dir = tempfile.mkdtemp(prefix="pi-jobs-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    config = uvicorn.Config(
        "services.api.app:app_from_environment",
        factory=True,
        host=api.pi_jobs_host,
        port=api.pi_jobs_port,
        workers=api.api_processes(),
        timeout_graceful_shutdown=api.pi_jobs_graceful_shutdown_seconds,
        # A new process serves once connected to Kafka (a few seconds under load) before the
        # one it replaces is retired; a process silent this long is taken for hung.
        timeout_worker_healthcheck=30,
        **server_options(),
    )
    try:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
