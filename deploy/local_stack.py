"""The four services as real processes on this machine: used by `make run` and the e2e tests."""

import contextlib
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

from deploy.local_server import poll_until
from deploy.ports import free_port
from deploy.processes import spawn, stop

SERVICES = ("projector", "calculator", "downloader", "api")


@dataclass
class LocalStack:
    bootstrap_servers: str
    data_dir: Path
    api_port: int = 3000
    downloader_port: int = 3002
    calculator_ops_port: int = 3003
    projector_ops_port: int = 3004
    topic_prefix: str = "pi-jobs"
    # False: the services write to this terminal; True: one log file per service in data_dir/logs.
    log_to_files: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def on_free_ports(cls, bootstrap_servers: str, data_dir: Path, **options: Any) -> "LocalStack":
        """A stack whose every port is a free one: it runs beside `make run` and other tests."""
        return cls(
            bootstrap_servers,
            data_dir,
            api_port=free_port(),
            downloader_port=free_port(),
            calculator_ops_port=free_port(),
            projector_ops_port=free_port(),
            **options,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "PI_JOBS_TOPIC_PREFIX": self.topic_prefix,
            "PI_JOBS_VIEW_DB": str(self.data_dir / "view.sqlite3"),
            "PI_JOBS_ZIP_CACHE_DIR": str(self.data_dir / "zips"),
            "PI_JOBS_DIGIT_FILES_DIR": str(self.data_dir / "digits"),
            "PI_JOBS_CHECKPOINT_DIR": str(self.data_dir / "checkpoints"),
            "PI_JOBS_PORT": str(self.api_port),
            "PI_JOBS_DOWNLOADER_PORT": str(self.downloader_port),
            "PI_JOBS_DOWNLOADER_URL": f"http://127.0.0.1:{self.downloader_port}",
            "PI_JOBS_CALCULATOR_OPS_PORT": str(self.calculator_ops_port),
            "PI_JOBS_PROJECTOR_OPS_PORT": str(self.projector_ops_port),
            **self.extra_env,
        }

    def log_path(self, service: str) -> Path:
        return self.data_dir / "logs" / f"{service}.log"

    def start(self, *services: str) -> None:
        for service in services or SERVICES:
            self.start_replica(service, service)

    def start_replica(self, service: str, name: str, **env: str) -> None:
        """Another process of `service` (a second calculator, say), known by `name`."""
        log = self.log_path(name) if self.log_to_files else None
        command = [sys.executable, "-m", f"services.{service}"]
        self.processes[name] = spawn(command, {**self.env(), **env}, log)

    def stop(self, *names: str) -> None:
        # In reverse order of starting: the API first, so nothing new is accepted meanwhile.
        for name in names or tuple(reversed(self.processes)):
            process = self.processes.pop(name, None)
            if process is not None:
                stop(process)

    def kill(self, service: str) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        process = self.processes.pop(service)
        process.kill()
        process.wait()

    def ops_url(self, service: str) -> str:
        """Where the service answers /healthz, /readyz and /metrics."""
        port = {
            "api": self.api_port,
            "downloader": self.downloader_port,
            "calculator": self.calculator_ops_port,
            "projector": self.projector_ops_port,
        }[service]
        return f"http://127.0.0.1:{port}"

    def readiness(self, service: str = "api", timeout: float = 5) -> tuple[bool, str]:
        """Whether its /readyz says ready (the api's: the whole system), and if not, why."""
        try:
            url = f"{self.ops_url(service)}/readyz"
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status == 200, "ready"
        except urllib.error.HTTPError as error:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                return False, str(json.loads(error.read())["error"])
            return False, str(error)
        except (urllib.error.URLError, OSError) as error:
            return False, str(error)

    def wait_ready(self, timeout: float = 90) -> None:
        def ready_or_exited() -> tuple[bool, str]:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {process.returncode}")
            return self.readiness()

        ready, why = poll_until(ready_or_exited, timeout)
        if not ready:
            raise TimeoutError(f"services not ready after {timeout:.0f} s: {why}")
