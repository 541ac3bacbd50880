"""A flood from one client is refused up front (429), before anything is written.

A token bucket per client address, in this API process: with several replicas behind a load
balancer, each allows the rate on its own.
"""

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from services.shared.web import ApiError

_MAX_CLIENTS = 10_000  # the least recently seen are forgotten beyond this


class SubmissionQuota:
    def __init__(
        self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._per_second = per_second
        self._burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> None:
        """Use one submission of `client`'s allowance, or refuse with 429 and when to retry."""
        now = self._clock()
        tokens, last = self._buckets.pop(client, (float(self._burst), now))
        tokens = min(self._burst, tokens + (now - last) * self._per_second)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            wait = math.ceil((1 - tokens) / self._per_second)
            raise ApiError(
                429,
                f"too many submissions from {client}: at most {self._per_second:g} per second "
                f"(bursts of {self._burst}); retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        self._buckets[client] = (tokens - 1, now)
        while len(self._buckets) > _MAX_CLIENTS:
            self._buckets.popitem(last=False)
