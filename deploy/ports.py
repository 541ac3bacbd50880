"""Ports on this machine: a free one for a server beside `make run` and the tests, and whether
one is taken now."""

import random
import socket
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, below the kernel's range of ephemeral ports: a server that stops and
    starts again on it (a broker restarted by a test) cannot find it taken meanwhile by the
    outgoing connection of some client, which the kernel gives ephemeral ports only."""
    low, _ = _ephemeral_ports()
    for _ in range(200):
        port = random.randrange(10_000, max(10_001, low))
        if why_taken(port, host, reuse_address=False) is None:
            return port
    with socket.socket() as s:  # that range is crowded: any free port will do
        s.bind((host, 0))
        return int(s.getsockname()[1])


def why_taken(port: int, host: str = "127.0.0.1", reuse_address: bool = True) -> str | None:
    """Why `port` cannot be bound now (the system's words), or None when it can.
    `reuse_address`: as our servers bind (the JVM and uvicorn set SO_REUSEADDR), so a port
    whose last connections are only closing counts as free."""
    with socket.socket() as probe:
        if reuse_address:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def _ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
