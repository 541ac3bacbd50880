"""Before `make run` starts anything: is it running here already, and are its ports free?"""

from collections.abc import Mapping
from pathlib import Path

from deploy.control import answering, socket_path
from deploy.ports import why_taken


def chosen_ports(env: Mapping[str, str]) -> dict[str, int]:
    """The ports `make run` serves on, by the setting that chooses each."""
    chosen = {
        "PI_JOBS_PORT": int(env.get("PI_JOBS_PORT", 3000)),
        "PI_JOBS_DOWNLOADER_PORT": int(env.get("PI_JOBS_DOWNLOADER_PORT", 3002)),
        "PI_JOBS_CALCULATOR_OPS_PORT": int(env.get("PI_JOBS_CALCULATOR_OPS_PORT", 3003)),
        "PI_JOBS_PROJECTOR_OPS_PORT": int(env.get("PI_JOBS_PROJECTOR_OPS_PORT", 3004)),
    }
    if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
        chosen["KAFKA_PORT"] = int(env.get("KAFKA_PORT", 9092))
        chosen["KAFKA_CONTROLLER_PORT"] = int(env.get("KAFKA_CONTROLLER_PORT", 9093))
    return chosen


def ports_taken(ports: dict[str, int]) -> list[str]:
    """Those of `ports` (setting: port) that something listens on, as `port (SETTING)`."""
    return [f"{port} ({setting})" for setting, port in ports.items() if why_taken(port)]


def why_not_start(data_dir: Path, ports: dict[str, int]) -> str | None:
    """What to tell a person instead of starting, if anything."""
    if answering(socket_path(data_dir)):
        return (
            f"pi-jobs is already running from {data_dir}: `make status` shows it, `make logs` "
            "follows it, `make stop` stops it"
        )
    if taken := ports_taken(ports):
        return (
            f"pi-jobs: port {', '.join(taken)} already in use, by a pi-jobs started from another "
            "directory (`make stop` there stops it) or another program: stop it, or choose other "
            "ports with these settings"
        )
    return None
