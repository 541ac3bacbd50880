"""Settings from the environment, one class per concern; each service takes what it needs."""

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Topic names get this prefix, so several deployments (or test runs) can share one broker.
    pi_jobs_topic_prefix: str = "pi-jobs"
    pi_jobs_event_partitions: int = Field(default=6, ge=1)
    # With several brokers: 3 and 2, so an acknowledged write survives the loss of a broker.
    pi_jobs_replication_factor: int = Field(default=1, ge=1)
    pi_jobs_min_insync_replicas: int = Field(default=1, ge=1)

    @property
    def events_topic(self) -> str:
        return f"{self.pi_jobs_topic_prefix}.events"

    @property
    def digits_topic(self) -> str:
        return f"{self.pi_jobs_topic_prefix}.digits"

    @property
    def dead_letters_topic(self) -> str:
        return f"{self.pi_jobs_topic_prefix}.dead-letters"

    def group_id(self, role: str) -> str:
        return f"{self.pi_jobs_topic_prefix}.{role}"


class ViewSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    pi_jobs_view_db: Path = REPO_ROOT / "var" / "view.sqlite3"
    # sqlite:///absolute/path, a file path, or postgresql://user:password@host:5432/database.
    # Unset: the SQLite file at PI_JOBS_VIEW_DB.
    pi_jobs_view_url: SecretStr | None = None

    @property
    def view_url(self) -> str:
        url = self.pi_jobs_view_url
        return url.get_secret_value() if url else str(self.pi_jobs_view_db)


class HttpSettings(BaseSettings):
    """What every HTTP service (api, downloader, the ops endpoints) allows one connection."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    # A request (line, headers, body) must arrive whole within this long, or get 408 and a close.
    pi_jobs_request_seconds: float = Field(default=10.0, gt=0)
    # Connections open in one process, and from one client address; beyond, 503 and a close.
    pi_jobs_max_connections: int = Field(default=10_000, ge=1)
    pi_jobs_max_connections_per_client: int = Field(default=256, ge=1)
    # Proxies (addresses or networks, comma-separated) whose X-Forwarded-For is believed and
    # whose connections are not capped per address. None by default: the socket's peer counts.
    pi_jobs_trusted_proxies: str = ""


class ZipCacheSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    # Each num's compressed digits, built once by the downloader; an API process on the same
    # host serves downloads from here too (elsewhere it finds nothing and asks the downloader).
    pi_jobs_zip_cache_dir: Path = REPO_ROOT / "var" / "zips"
    pi_jobs_zip_cache_bytes: int = Field(default=4 * 2**30, ge=0)
    # The stored digits of each radix as one flat file, for random access and search.
    pi_jobs_digit_files_dir: Path = REPO_ROOT / "var" / "digits"


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    pi_jobs_host: str = "127.0.0.1"
    pi_jobs_port: int = 3000
    # A billion decimals fit this project's reference host (2 cores, 24 GiB): docs/scaling.md.
    pi_jobs_max_num: int = Field(default=1_000_000_000, ge=1)
    pi_jobs_downloader_url: str = "http://127.0.0.1:3002"
    # Submissions one client may make, per second and in a burst (per API process).
    pi_jobs_submissions_per_second: float = Field(default=50.0, gt=0)
    pi_jobs_submission_burst: int = Field(default=200, ge=1)
    # How long a POST waits for the view to show the new job (read-your-writes).
    pi_jobs_projection_wait_seconds: float = 5.0
    # Downloads one client address may have under way at once; beyond, 429.
    pi_jobs_max_downloads_per_client: int = Field(default=8, ge=1)
    # Decimals not stored yet that one client may have queued or running, and everyone: one
    # client may ask for PI_JOBS_MAX_NUM, and the queue holds two such jobs.
    pi_jobs_max_pending_decimals_per_client: int = Field(default=1_000_000_000, ge=1)
    pi_jobs_max_queued_decimals: int = Field(default=2_000_000_000, ge=1)
    # "name:key, ...": when set, every call about jobs needs one of the keys (Bearer).
    pi_jobs_api_keys: SecretStr = SecretStr("")
    # Origins whose pages may call the API (CORS), comma-separated; none by default.
    pi_jobs_allowed_origins: str = ""
    # Who may read /metrics (addresses or networks, comma-separated).
    pi_jobs_metrics_networks: str = "127.0.0.0/8, ::1"
    # Processes serving the public address; 0: one per core but one, which the rest of the
    # system needs (on 2 cores, a second API process won nothing and tripled the p99 latency).
    pi_jobs_api_processes: int = Field(default=0, ge=0)
    # On SIGTERM, how long open requests get to finish before their connections are closed.
    pi_jobs_graceful_shutdown_seconds: int = Field(default=10, ge=1)

    def api_processes(self) -> int:
        return self.pi_jobs_api_processes or max(1, (os.cpu_count() or 1) - 1)


class CalculatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    # Computations of at least this many digits take the large lane, one at a time.
    pi_jobs_large_job_digits: int = Field(default=2_000_000, ge=1)
    pi_jobs_max_jobs_in_flight: int = Field(default=64, ge=1)
    # /healthz, /readyz and /metrics (a second calculator on the same host goes without them).
    pi_jobs_calculator_ops_host: str = "127.0.0.1"
    pi_jobs_calculator_ops_port: int = 3003
    # Where a computation saves its work as it goes (resumed after a crash; removed when its job
    # ends), and the series state of the largest computation done, which larger ones extend.
    pi_jobs_checkpoint_dir: Path = REPO_ROOT / "var" / "checkpoints"
    # A computation's first checkpoint comes after this long, the next ones as often.
    pi_jobs_checkpoint_interval_seconds: float = Field(default=20.0, gt=0)
    # A computation's checkpoints at most (the series state, 2.6 bytes per decimal, aside).
    pi_jobs_checkpoint_max_bytes: int = Field(default=8 * 2**30, ge=0)
    pi_jobs_keep_series_state: bool = True


class ProjectorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    # /healthz, /readyz and /metrics.
    pi_jobs_projector_ops_host: str = "127.0.0.1"
    pi_jobs_projector_ops_port: int = 3004


class DownloaderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    pi_jobs_downloader_host: str = "127.0.0.1"
    pi_jobs_downloader_port: int = 3002
