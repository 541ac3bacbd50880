"""Which connections an HTTP service takes: a cap on those open in this process, and on those
of one client address, so that one client holding thousands of idle or trickling connections
cannot take the service from everyone else. Beyond a cap a connection is refused at once (a
503 and a close) and counted; the count is logged once every 10 s, not once a connection.
"""

import ipaddress
import logging
import resource
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 10.0
# Descriptors kept for what is not a client connection (the view, Kafka, log files...).
_RESERVED_DESCRIPTORS = 256

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> list[Network]:
    """ "10.0.0.1, 192.168.0.0/16" -> networks (a lone address is a network of one)."""
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    ]


def in_networks(address: str | None, networks: list[Network]) -> bool:
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def raise_open_file_limit() -> int:
    """Open files allowed to this process: raised to the hard limit (often 1,024 by default,
    which a few hundred idle clients would exhaust). Returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class ConnectionLimits:
    def __init__(
        self,
        max_open: int,
        max_per_client: int,
        uncapped: list[Network],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_open = max_open
        self.max_per_client = max_per_client
        self._uncapped = uncapped  # trusted proxies: many clients behind one address
        self._clock = clock
        self._open = 0
        self._per_client: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()
        self._counting_since: float | None = None
        # Whether the one line for refusals counted from now on is on its way (by the caller).
        self.counting_refusals_scheduled = False

    @classmethod
    def for_this_process(
        cls, max_open: int, max_per_client: int, uncapped: list[Network]
    ) -> "ConnectionLimits":
        """Capped below what the process may open, so it never runs out of descriptors."""
        allowed = raise_open_file_limit() - _RESERVED_DESCRIPTORS
        return cls(max(1, min(max_open, allowed)), max_per_client, uncapped)

    def admit(self, address: str | None) -> str | None:
        """None: taken (release it when it closes). Else why it is refused."""
        key = address or "unknown"
        if self._open >= self.max_open:
            return self._refuse(key, f"this server has {self._open} connections open, its most")
        capped = not in_networks(address, self._uncapped)
        if capped and self._per_client[key] >= self.max_per_client:
            return self._refuse(key, f"{self.max_per_client} connections from {key} are open")
        self._open += 1
        self._per_client[key] += 1
        return None

    def release(self, address: str | None) -> None:
        key = address or "unknown"
        self._open -= 1
        self._per_client[key] -= 1
        if self._per_client[key] <= 0:
            del self._per_client[key]

    def _refuse(self, key: str, why: str) -> str:
        if self._counting_since is None:
            self._counting_since = self._clock()
        self._refused[key] += 1
        return why

    def log_refusals(self) -> None:
        """One line for every refusal since the first one counted (call it LOG_EVERY_SECONDS
        after that first one)."""
        if self._counting_since is None:
            return
        log.warning(
            "refused %d connections in the last %.0f s",
            sum(self._refused.values()),
            self._clock() - self._counting_since,
            extra={"by_address": dict(self._refused.most_common(5))},
        )
        self._refused.clear()
        self._counting_since = None
