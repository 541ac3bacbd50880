"""Three Apache Kafka nodes on loopback, each broker+controller, with a three-voter KRaft quorum.

    python -m deploy.kafka.local_cluster run [--data-dir DIR] [--base-port 9192]

Node n (1..3) serves clients on base+n-1 and its controller on base+n+2: from 9192, clients on
9192-9194 and controllers on 9195-9197. Topics default to replication factor 3 and
min.insync.replicas 2, so an acknowledged write survives the loss of any one node. The services
use it with:

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194 \
    PI_JOBS_REPLICATION_FACTOR=3 PI_JOBS_MIN_INSYNC_REPLICAS=2 make run

Needs Java 17+ and Maven, like deploy.kafka.local_broker; stdlib only on the Python side.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deploy.kafka.local_broker import (
    BrokerError,
    LocalBroker,
    cluster_id_in,
    exchange,
    probe_create_topic,
)
from deploy.local_server import LocalServer, command_line, run_in_foreground

NODE_IDS = (1, 2, 3)
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2


@dataclass
class ClusterNode(LocalBroker):
    """One node of a LocalCluster: a LocalBroker with its own id, the shared quorum and id."""

    node_id: int = 1
    voters: str = ""
    cluster_id_file: Path = Path()

    def _settings(self) -> dict[str, str]:
        rf, min_isr = str(REPLICATION_FACTOR), str(MIN_INSYNC_REPLICAS)
        return {
            **super()._settings(),
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "default.replication.factor": rf,
            "min.insync.replicas": min_isr,
            "unclean.leader.election.enable": "false",
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min_isr,
        }

    def _cluster_id(self) -> str:
        return cluster_id_in(self.cluster_id_file)

    def _probe(self) -> int:
        # Accepted only once all three brokers are registered and unfenced: a node that has
        # (re)joined, not merely one that answers.
        return probe_create_topic(self.host, self.port, replication_factor=REPLICATION_FACTOR)


@dataclass
class LocalCluster(LocalServer):
    data_dir: Path
    ports: Sequence[int]
    controller_ports: Sequence[int]
    host: str = "127.0.0.1"
    heap: str = "320m"
    log_to_stdout: bool = False
    nodes: dict[int, ClusterNode] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._interrupted = False
        if not len(self.ports) == len(self.controller_ports) == len(NODE_IDS):
            raise ValueError(f"a cluster has {len(NODE_IDS)} ports and controller ports")
        voters = ",".join(
            f"{node_id}@{self.host}:{port}"
            for node_id, port in zip(NODE_IDS, self.controller_ports, strict=True)
        )
        self.nodes = {
            node_id: ClusterNode(
                self.data_dir / f"node-{node_id}",
                port,
                controller_port,
                host=self.host,
                heap=self.heap,
                log_to_stdout=self.log_to_stdout,
                node_id=node_id,
                voters=voters,
                cluster_id_file=self.data_dir / "cluster.id",
            )
            for node_id, port, controller_port in zip(
                NODE_IDS, self.ports, self.controller_ports, strict=True
            )
        }

    @classmethod
    def on_base_port(
        cls, data_dir: Path, base_port: int, heap: str = "320m", log_to_stdout: bool = False
    ) -> LocalCluster:
        n = len(NODE_IDS)
        ports = range(base_port, base_port + n)
        controller_ports = range(base_port + n, base_port + 2 * n)
        return cls(data_dir, ports, controller_ports, heap=heap, log_to_stdout=log_to_stdout)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes.values())

    def node(self, node_id: int) -> ClusterNode:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise BrokerError(f"no node {node_id}: nodes are {list(self.nodes)}") from None

    def start(self) -> None:
        """Start every node (formatting each the first time); wait_ready() tells when it serves."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            for node in self.nodes.values():
                node.start()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for node in self.nodes.values():
            node.wait_ready(max(deadline - time.monotonic(), 0.0))

    def stop(self, timeout: float = 20) -> None:
        # SIGTERM to all first, so the nodes shut down together rather than one by one, each
        # waiting for a quorum that is leaving.
        for node in self.nodes.values():
            node.terminate()
        for node in self.nodes.values():
            node.stop(timeout)

    def interrupt(self, hard: bool = False) -> None:
        self._interrupted = True
        for node in self.nodes.values():
            node.interrupt(hard)

    def wait_exited(self) -> None:
        """Until every node has exited: a node may die (or be killed to try things out), and
        the others carry on, saying so."""
        reported: set[int] = set()
        # Not waiting after an interrupt: stop() then gives the nodes a deadline, since with too
        # few voters left a broker's controlled shutdown waits for a controller that never comes.
        while not self._interrupted and (running := self.running()):
            for node_id in set(self.nodes) - set(running) - reported:
                reported.add(node_id)
                print(f"kafka node {node_id} exited", file=sys.stderr, flush=True)
            time.sleep(0.2)  # supervising: nothing to wait on but the processes themselves

    def kill(self, node_id: int) -> None:
        """SIGKILL one node: a crash, no controlled shutdown."""
        node = self.node(node_id)
        if node.process is not None:
            node.process.kill()
            node.process.wait()
            node.process = None

    def restart(self, node_id: int, timeout: float = 120) -> None:
        """(Re)start one node and wait until it has rejoined: all three brokers unfenced."""
        node = self.node(node_id)
        node.stop()
        node.start()
        node.wait_ready(timeout)

    def running(self) -> list[int]:
        return [i for i, node in self.nodes.items() if node.process and node.process.poll() is None]

    def active_controller(self) -> int:
        """The node id of the quorum's leader, asked of the first node that answers."""
        errors = []
        for node_id in self.running():
            node = self.nodes[node_id]
            try:
                return describe_quorum_leader(node.host, node.port)
            except OSError as error:
                errors.append(f"node {node_id}: {error}")
        raise BrokerError(f"no node answered DescribeQuorum: {'; '.join(errors) or 'none running'}")


# --- which node leads the metadata quorum (the active controller) ----------------------------


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _skip_tagged_fields(data: bytes, pos: int) -> int:
    count, pos = _uvarint(data, pos)
    for _ in range(count):
        _, pos = _uvarint(data, pos)
        size, pos = _uvarint(data, pos)
        pos += size
    return pos


def describe_quorum_leader(host: str, port: int, timeout: float = 5.0) -> int:
    """DescribeQuorum v0 for __cluster_metadata-0 through a broker, which forwards it to the
    active controller; returns the leader's node id, -1 while there is none."""
    topic = b"__cluster_metadata"
    client_id = b"local-cluster-probe"
    # Flexible version: compact arrays and strings carry length+1 as a varint (all < 128 here),
    # and every struct ends with its tagged fields (none: a 0 byte).
    header = struct.pack(">hhih", 55, 0, 1, len(client_id)) + client_id + b"\0"
    body = (
        bytes([2, len(topic) + 1]) + topic + bytes([2]) + struct.pack(">i", 0) + b"\0" * 3
    )  # one topic, one partition (0), tagged fields of partition, topic and request
    resp = exchange(host, port, header + body, timeout)
    pos = _skip_tagged_fields(resp, 4)  # after the correlation id
    (error_code,) = struct.unpack_from(">h", resp, pos)
    if error_code:
        raise ConnectionError(f"DescribeQuorum failed with error code {error_code}")
    _, pos = _uvarint(resp, pos + 2)  # topics
    name_len, pos = _uvarint(resp, pos)
    _, pos = _uvarint(resp, pos + name_len - 1)  # partitions
    _, error_code, leader_id = struct.unpack_from(">ihi", resp, pos)
    if error_code:
        raise ConnectionError(f"DescribeQuorum failed with partition error code {error_code}")
    return int(leader_id)


# --- CLI -------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    cluster = LocalCluster.on_base_port(Path(args.data_dir), args.base_port, log_to_stdout=True)
    name = "kafka cluster"
    return run_in_foreground(cluster, name, lambda: cluster.bootstrap_servers, (BrokerError,))


def main(argv: list[str] | None = None) -> int:
    parser = command_line(
        "deploy.kafka.local_cluster",
        None,
        "run a three-node cluster in the foreground",
        ("KAFKA_CLUSTER_DATA_DIR", "kafka-cluster"),
        {"--base-port": ("KAFKA_CLUSTER_BASE_PORT", 9192)},
    )
    args = parser.parse_args(argv)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
