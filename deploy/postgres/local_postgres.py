"""A PostgreSQL server of our own, from Debian's packages, for tests and local runs.

    python -m deploy.postgres.local_postgres install   # apt-get install postgresql, if missing
    python -m deploy.postgres.local_postgres run [--data-dir DIR] [--port 5433]

PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user the Debian
package creates, and the data directory is handed to that user. Stdlib only.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from deploy.local_server import LocalProcessServer, command_line, log_tail, run_in_foreground

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"
_INSTALL_HINT = "PostgreSQL is not installed: apt-get install postgresql"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SOCKET_PATH_MAX = 107  # sun_path, less the terminating NUL


class PostgresError(RuntimeError):
    """The server could not be set up, started, or did not become ready."""


def find_bindir() -> Path:
    """The newest Debian PostgreSQL's bin directory, else the one initdb is on PATH in."""
    versions = sorted(
        (int(path.parent.parent.name), path.parent)
        for path in DEBIAN_ROOT.glob("*/bin/initdb")
        if path.parent.parent.name.isdigit()
    )
    if versions:
        return versions[-1][1]
    if initdb := shutil.which("initdb"):
        return Path(initdb).parent
    raise PostgresError(_INSTALL_HINT)


def ensure_installed() -> Path:
    """Install Debian's postgresql package when missing (as root); return the bin directory."""
    try:
        return find_bindir()
    except PostgresError:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait_for_lock = ["-o", "DPkg::Lock::Timeout=300"]  # another apt-get may be running
    for command in (["update"], ["install", "-y", "postgresql"]):
        done = subprocess.run(["apt-get", "-q", *wait_for_lock, *command], env=env)
        if done.returncode != 0:
            raise PostgresError(f"apt-get {command[0]} failed with code {done.returncode}")
    return find_bindir()


@dataclass
class LocalPostgres(LocalProcessServer):
    name: ClassVar[str] = "postgres"
    error: ClassVar[type[RuntimeError]] = PostgresError
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    database: str = "pi_jobs"
    user: str = "pi_jobs"  # the superuser initdb creates; trusted on loopback, no password
    # False trades crash safety for speed (fsync off): for throwaway test servers only.
    durable: bool = True
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    # A fast shutdown: clients are disconnected.
    stop_signal: signal.Signals = field(default=signal.SIGINT, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in (self.database, self.user):
            if not _NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a plain lowercase PostgreSQL name")
        self.data_dir = self.data_dir.resolve()

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def cluster_dir(self) -> Path:
        return self.data_dir / "cluster"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "socket"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    def _server_user(self) -> pwd.struct_passwd | None:
        """Who runs initdb and the server: None for the current user, unless that is root."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise PostgresError(
                f"running as root needs the {SERVICE_USER!r} user: apt-get install postgresql"
            ) from None

    def _run_as_server_user(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        account = self._server_user()
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd="/",  # wherever we are may be closed to the server user
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
        )

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        account = self._server_user()
        if account is None:
            return
        for path in (self.data_dir, self.socket_dir):
            os.chown(path, account.pw_uid, account.pw_gid)
        self.data_dir.chmod(0o700)
        if self._run_as_server_user(["test", "-w", str(self.socket_dir)]).returncode != 0:
            raise PostgresError(
                f"user {SERVICE_USER!r} cannot reach {self.data_dir}: choose a data directory "
                "whose parent directories all let other users in (chmod o+x)"
            )

    def _initdb(self, bindir: Path) -> None:
        if (self.cluster_dir / "PG_VERSION").exists():  # initialised once, then reused
            return
        done = self._run_as_server_user(
            [
                str(bindir / "initdb"),
                f"--pgdata={self.cluster_dir}",
                f"--username={self.user}",
                "--auth=trust",  # the server listens on loopback and its own socket only
                "--encoding=UTF8",
                "--locale=C",
                *([] if self.durable else ["--no-sync"]),
            ]
        )
        if done.returncode != 0:
            raise PostgresError(f"initdb in {self.cluster_dir} failed:\n{done.stdout}{done.stderr}")

    def _server_command(self, bindir: Path) -> list[str]:
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "logging_collector": "off",
        }
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        return [str(bindir / "postgres"), "-D", str(self.cluster_dir), *options]

    def start(self) -> None:
        self._check_not_running()
        bindir = find_bindir()
        socket_path = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket_path)) > _SOCKET_PATH_MAX:
            raise PostgresError(f"{socket_path} is too long for a unix socket: use a shorter dir")
        self._prepare_data_dir()
        self._initdb(bindir)
        account = self._server_user()
        self._launch(
            self._server_command(bindir),
            self.log_path,
            cwd="/",
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
        )

    def _client(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(find_bindir() / program), "-h", self.host, "-p", str(self.port)]
        return subprocess.run(
            [*command, "-U", self.user, *args],
            capture_output=True,
            text=True,
            env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
        )

    def readiness(self) -> tuple[bool, str]:
        """Whether the server accepts connections over TCP, and if not, pg_isready's words."""
        done = self._client("pg_isready", "-d", "postgres", "-t", "2")
        return done.returncode == 0, done.stdout.strip()

    def _log_tail(self) -> str:
        return log_tail(self.log_path, 20)

    def _sql(self, statement: str) -> str:
        done = self._client("psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", "postgres",
                            "-c", statement)  # fmt: skip
        if done.returncode != 0:
            raise PostgresError(f"psql failed on {statement!r}: {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, name: str) -> str:
        """Create database `name` unless it exists; return its URL."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a plain lowercase PostgreSQL name")
        if not self._sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
            self._sql(f"CREATE DATABASE {name}")
        return self.url_for(name)

    def _when_ready(self) -> None:
        self.create_database(self.database)


# --- CLI -------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    server = LocalPostgres(Path(args.data_dir), args.port)
    return run_in_foreground(server, "postgres", lambda: server.url, (PostgresError,))


def main(argv: list[str] | None = None) -> int:
    parser = command_line(
        "deploy.postgres.local_postgres",
        ("install", "apt-get install postgresql when it is missing (as root)"),
        "run a server in the foreground",
        ("PG_DATA_DIR", "postgres"),
        {"--port": ("PG_PORT", 5433)},
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            print(ensure_installed())
            return 0
        return _run(args)
    except PostgresError as e:
        raise SystemExit(f"postgres: {e}") from None


if __name__ == "__main__":
    sys.exit(main())
