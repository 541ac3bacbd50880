"""Peak-memory estimate for a pi computation and the host check that uses it."""

from pathlib import Path

# Peak RSS summed over the engine's two processes, sampled from /proc (the final stage cut to
# the result's precision, see truncated.py): 259 MiB at 20M, 1081 MiB at 100M and 2132 MiB at
# 200M decimals (11.3 and 11.2 bytes a decimal), in the splitting or the join after it. A term
# grows by about 6 % from 2e8 to 1e9 decimals, so a billion needs about 11.1 GiB: 12.5 bytes a
# decimal (11.7 GiB) keeps some headroom.
BASE_BYTES = 64 * 2**20
BYTES_PER_DECIMAL = 12.5


class InsufficientMemoryError(ValueError):
    """The host does not have enough available memory for the requested digits."""


def estimate_peak_bytes(num: int) -> int:
    """Upper estimate of peak resident memory (all processes) for `num` decimals."""
    return BASE_BYTES + int(BYTES_PER_DECIMAL * num)


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, capped by the cgroup v2 limit if one is set."""
    available: int | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except OSError:
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            headroom = int(limit) - used
            available = headroom if available is None else min(available, headroom)
    except (OSError, ValueError):
        pass
    return available


def ensure_memory_for(num: int) -> None:
    """Raise InsufficientMemoryError when `num` decimals cannot fit in available memory."""
    needed = estimate_peak_bytes(num)
    available = available_bytes()
    if available is not None and needed > available:
        raise InsufficientMemoryError(
            f"{num} decimals need about {needed / 2**20:.0f} MiB of memory, "
            f"but only {available / 2**20:.0f} MiB is available"
        )
