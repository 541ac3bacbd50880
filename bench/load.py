"""Load tools for the benchmarks: wrk runs, a constant-rate client, CPU and memory meters, the
Node peer."""

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local_server import poll_until
from deploy.ports import free_port
from deploy.processes import spawn, stop

PEER_DIR = Path(__file__).parent / "peers" / "original"

# wrk's summary as one JSON line, so nothing depends on the layout of its text report.
_WRK_SCRIPT = """
wrk.method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY") or ""
if body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":%d,"bad_status":%d,' ..
    '"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # connection errors, timeouts and answers of 4xx/5xx
    bytes: int = 0

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def wrk(url: str, seconds: float, connections: int = 32, body: str = "") -> LoadResult:
    """`wrk -t1 -c{connections}` against one URL: GET, or a form POST when `body` is given."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)
    try:
        env = {**os.environ, "WRK_METHOD": "POST" if body else "GET", "WRK_BODY": body}
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", script.name, url]
        output = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    finally:
        os.unlink(script.name)
    line = next(x for x in output.stdout.splitlines() if x.startswith("WRK_JSON "))
    summary = json.loads(line.removeprefix("WRK_JSON "))
    return LoadResult(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=summary["errors"] + summary["bad_status"],
        bytes=summary["bytes"],
    )


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: `make bench-load` installs it (apt-get install wrk)")


# A process's CPU time, children included once they are reaped, from /proc.
_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        for child in children.read_text().split():
            pids += process_tree(int(child))
    except OSError:
        pass
    return pids


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by `pid` and its live descendants."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of `pid` and its live descendants, in MiB."""
    total_kib = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        total_kib += next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
        )
    return total_kib / 1024


@dataclass
class CpuMeter:
    """Cores used by each named process tree between start() and stop()."""

    pids: dict[str, int]
    _started: dict[str, float] = field(default_factory=dict)
    _at: float = 0.0
    cores: dict[str, float] = field(default_factory=dict)

    def start(self) -> "CpuMeter":
        self._started = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._at = time.monotonic()
        return self

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._at
        self.cores = {
            name: (cpu_seconds(pid) - self._started[name]) / elapsed
            for name, pid in self.pids.items()
        }
        return self.cores


def java_broker_pid(port: int) -> int | None:
    """The pid of the broker listening on `port` (for its CPU), found through /proc."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" in cmdline:
            try:
                config = Path(cmdline[-2].decode()).read_text()
            except (OSError, IndexError, UnicodeDecodeError):
                continue
            if f":{port}" in config:
                return int(proc.name)
    return None


@contextmanager
def peer_app() -> Iterator[str]:
    """The original app's routes in Node.js on a free port; yields its base URL."""
    if not (PEER_DIR / "node_modules").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER_DIR, check=True)
    port = free_port()
    process = spawn(["node", str(PEER_DIR / "server.js")], {"PORT": str(port)})
    url = f"http://127.0.0.1:{port}"

    def answering() -> tuple[bool, str]:
        if process.poll() is not None:
            raise RuntimeError(f"the Node peer exited with code {process.returncode}")
        try:
            urllib.request.urlopen(f"{url}/pi_job/0", timeout=1)
        except urllib.error.HTTPError:
            return True, "answering"  # 404: no job yet
        except OSError as error:
            return False, str(error)
        return True, "answering"

    try:
        started, why = poll_until(answering, timeout=20, interval=0.05)
        if not started:
            raise RuntimeError(f"the Node peer did not start: {why}")
        yield url
    finally:
        stop(process)


@dataclass
class RateResult:
    sent: int
    statuses: Counter[int]
    latencies_ms: list[float]
    seconds: float
    behind: int  # requests that could not leave on time: every connection was busy

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else 0.0


async def constant_rate(
    host: str, port: int, request: bytes, rate: float, seconds: float, connections: int = 200
) -> RateResult:
    """Send `request` `rate` times a second for `seconds` over a pool of keep-alive connections.

    Latency counts from when a request was due, so a slow server cannot hide it by slowing the
    client down (no coordinated omission)."""
    due: asyncio.Queue[float | None] = asyncio.Queue()
    result = RateResult(0, Counter(), [], seconds, 0)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (when := await due.get()) is not None:
                writer.write(request)
                status, _ = await read_response(reader)
                result.statuses[status] += 1
                result.latencies_ms.append((time.monotonic() - when) * 1000)
        except (ConnectionError, asyncio.IncompleteReadError):
            result.statuses[0] += 1
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    started = time.monotonic()
    interval = 1 / rate
    while (now := time.monotonic()) - started < seconds:
        while result.sent < (now - started) * rate:
            if due.qsize() > connections:
                result.behind += 1
            due.put_nowait(started + result.sent * interval)
            result.sent += 1
        await asyncio.sleep(interval / 2 if interval < 0.005 else 0.002)
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers, return_exceptions=True)
    result.seconds = time.monotonic() - started
    return result


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length: (status, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def form_post(path: str, body: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        f"{body}"
    ).encode()
