"""A single-node Apache Kafka broker (KRaft, broker+controller) run from Maven jars.

    python -m deploy.kafka.local_broker fetch   # download the jars (once, then cached)
    python -m deploy.kafka.local_broker run [--data-dir DIR] [--port 9092] [--controller-port 9093]

Needs Java 17+ and Maven; stdlib only on the Python side.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

# REPO_ROOT and free_port are re-exported: tests import them from here.
from deploy import REPO_ROOT as REPO_ROOT
from deploy.local_server import LocalProcessServer, command_line, log_tail, run_in_foreground
from deploy.ports import free_port as free_port
from deploy.ports import why_taken

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG4J_CONFIG = HERE / "log4j2.properties"
LIBS = HERE / "libs"
MARKER = LIBS / ".complete"  # holds the pom's hash once copy-dependencies has succeeded


class BrokerError(RuntimeError):
    """The broker could not be started, or did not become ready."""


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home, "bin", "java")) if home else shutil.which("java")
    hint = "Java 17+ is required: install a JDK (e.g. apt-get install openjdk-17-jre-headless)"
    if not java or not Path(java).exists():
        raise SystemExit(f"{hint} (JAVA_HOME={home} has no bin/java)" if home else hint)
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise SystemExit(f"{hint} (cannot read the version of {java})")
    major = int(match[1]) if match[1] != "1" else int(match[2] or 0)  # "1.8.0" is Java 8
    if major < 17:
        raise SystemExit(f"{hint} (found Java {major} at {java})")
    return java


def ensure_jars() -> Path:
    """Copy Kafka and its runtime dependencies into libs/ with Maven, unless already done."""
    LIBS.mkdir(exist_ok=True)
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    with (LIBS / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test runs share libs/
        if MARKER.exists() and MARKER.read_text().strip() == digest:
            return LIBS
        mvn = shutil.which("mvn")
        if not mvn:
            raise SystemExit(
                "Maven is required to fetch the Kafka jars: install it (e.g. apt-get install maven)"
            )
        _java()
        MARKER.unlink(missing_ok=True)
        for jar in LIBS.glob("*.jar"):  # no stale versions left on the classpath
            jar.unlink()
        # outputDirectory must be absolute: Maven resolves a relative one against the pom's dir.
        cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={LIBS}"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"fetching Kafka jars failed:\n{done.stdout}{done.stderr}")
        MARKER.write_text(digest + "\n")
    return LIBS


def cluster_id_in(path: Path) -> str:
    """The cluster id kept in `path`, created there (random, base64) the first time."""
    if not path.exists():
        path.write_text(_new_cluster_id() + "\n")
    return path.read_text().strip()


def _new_cluster_id() -> str:
    # Like Kafka's Uuid.randomUuid: never one starting with "-", which a command line would
    # take for an option.
    while (cluster_id := base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode())[0] == "-":
        pass
    return cluster_id


# --- readiness probe over the Kafka protocol -------------------------------------------------


def _str(s: str) -> bytes:
    data = s.encode()
    return struct.pack(">h", len(data)) + data


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def exchange(host: str, port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send one size-prefixed request on a fresh connection; return the response, unprefixed."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        return _recv_exact(sock, size)


def probe_create_topic(
    host: str, port: int, timeout: float = 5.0, replication_factor: int = 1
) -> int:
    """Send CreateTopics v4 with validate_only=true; return the topic's error code.

    0 means the controller accepted a topic of that replication factor, i.e. that many brokers
    are registered and unfenced, and this one is serving: what a client needs to create topics
    and produce.
    """
    body = (
        struct.pack(">i", 1)  # topics
        + _str("local-broker-readiness-probe")
        + struct.pack(">ihii", 1, replication_factor, 0, 0)  # partitions, no assignments/configs
        + struct.pack(">ib", int(timeout * 1000), 1)  # timeout_ms, validate_only
    )
    header = struct.pack(">hhi", 19, 4, 1) + _str("local-broker-probe")  # CreateTopics v4
    resp = exchange(host, port, header + body, timeout + 1)
    # correlation_id, throttle_time_ms, topics count, name (int16 length + bytes), error_code
    _, _, count, name_len = struct.unpack_from(">iiih", resp)
    if count != 1:
        raise ConnectionError(f"unexpected CreateTopics response with {count} topics")
    (error_code,) = struct.unpack_from(">h", resp, 14 + name_len)
    return int(error_code)


_READY_CODES = {0, 36}  # NONE, TOPIC_ALREADY_EXISTS


# --- the broker ------------------------------------------------------------------------------


@dataclass
class LocalBroker(LocalProcessServer):
    name: ClassVar[str] = "kafka"
    error: ClassVar[type[RuntimeError]] = BrokerError
    data_dir: Path
    port: int
    controller_port: int
    host: str = "127.0.0.1"
    heap: str = "512m"
    log_to_stdout: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @classmethod
    def on_free_ports(cls, data_dir: Path) -> LocalBroker:
        """A broker on ports nothing else uses: beside `make run`, or another test run."""
        return cls(data_dir, port=free_port(), controller_port=free_port())

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def _settings(self) -> dict[str, str]:
        h = self.host
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            # static quorum: survives a change of controller port between restarts
            "controller.quorum.voters": f"1@{h}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{h}:{self.port},CONTROLLER://{h}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{h}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str((self.data_dir / "data").resolve()),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }

    def _properties(self) -> str:
        return "".join(f"{k}={v}\n" for k, v in self._settings().items())

    def _cluster_id(self) -> str:
        return cluster_id_in(self.data_dir / "cluster.id")

    def _probe(self) -> int:
        """One readiness probe: a CreateTopics error code (see probe_create_topic)."""
        return probe_create_topic(self.host, self.port)

    def _java_cmd(self, java: str, main: str, *args: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.log_dir.resolve()}",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dlocal.kafka.console.level={'WARN' if self.log_to_stdout else 'OFF'}",
            "-cp",
            f"{ensure_jars()}/*",
            main,
            *args,
        ]

    def start(self) -> None:
        self._check_not_running()
        for port in (self.port, self.controller_port):
            if why := why_taken(port, self.host):
                raise BrokerError(f"port {port} on {self.host} is already in use ({why})")
        java = _java()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.write_text(self._properties())
        if not (self.data_dir / "data" / "meta.properties").exists():  # format once, then reuse
            cmd = self._java_cmd(java, "kafka.tools.StorageTool", "format", "-g",
                                 "-t", self._cluster_id(), "-c", str(config))  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise BrokerError(f"formatting {self.data_dir} failed:\n{done.stdout}{done.stderr}")
        output = None if self.log_to_stdout else self.log_dir / "kafka.out"
        self._launch(self._java_cmd(java, "kafka.Kafka", str(config)), output)

    def _log_tail(self) -> str:
        parts = [log_tail(self.log_dir / "kafka.out", 10), log_tail(self.log_dir / "server.log")]
        return "\n".join(p for p in parts if p)

    def readiness(self) -> tuple[bool, str]:
        """Whether the broker accepts a (validate-only) topic creation now, and if not, why."""
        try:
            error_code = self._probe()
        except OSError as e:
            return False, str(e)
        return error_code in _READY_CODES, f"CreateTopics error code {error_code}"


# --- CLI -------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    broker = LocalBroker(Path(args.data_dir), args.port, args.controller_port, log_to_stdout=True)
    return run_in_foreground(broker, "kafka", lambda: broker.bootstrap_servers, (BrokerError,))


def main(argv: list[str] | None = None) -> int:
    parser = command_line(
        "deploy.kafka.local_broker",
        ("fetch", "download the Kafka jars with Maven"),
        "run a single-node broker in the foreground",
        ("KAFKA_DATA_DIR", "kafka"),
        {"--port": ("KAFKA_PORT", 9092), "--controller-port": ("KAFKA_CONTROLLER_PORT", 9093)},
    )
    args = parser.parse_args(argv)
    if args.command == "fetch":
        libs = ensure_jars()
        print(f"The Kafka broker's jars are in {libs.relative_to(REPO_ROOT)} (Maven fetched them).")
        return 0
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
