"""A billion decimals end to end through the real services, with each stage's time and memory.

    .venv/bin/python -m bench.bench_billion [--num 1000000000]

Starts its own broker and services on free ports (as bench_flow.py does), submits one job,
waits for it showing its progress, downloads its zip streaming to a file (resumed once with
Range to check resuming), unzips it streaming, and prints the time of each stage, the peak
resident memory of each service (the calculator's engine processes summed apart from the
calculator itself), and the SHA-256 of the `num` decimals after "3.". A benchmark, not a test.
"""

import argparse
import hashlib
import json
import signal
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deploy.kafka.local_broker import LocalBroker
from deploy.local_stack import LocalStack

SAMPLE_SECONDS = 0.2
PROGRESS_EVERY_SECONDS = 15.0
PIECE = 1 << 20


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class MemoryWatch:
    """Samples each service's own RSS and, apart, the sum over its child processes (for the
    calculator: the engine and its worker), in a thread, from /proc."""

    pids: dict[str, int]
    started_mib: dict[str, float] = field(default_factory=dict)
    peak_mib: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.started_mib = {name: _rss_mib(pid) for name, pid in self.pids.items()}
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _note(self, name: str, mib: float) -> None:
        self.peak_mib[name] = max(self.peak_mib.get(name, 0.0), mib)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            for name, pid in self.pids.items():
                self._note(name, _rss_mib(pid))
                children = _descendants(pid)
                if children:
                    self._note(
                        f"{name}'s child processes", sum(_rss_mib(child) for child in children)
                    )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def wait_complete(client: httpx.Client, job_id: str) -> dict[str, float]:
    """Seconds from now to in_progress and to complete, printing progress as it goes."""
    started = time.perf_counter()
    seen: dict[str, float] = {}
    last_print = 0.0
    while True:
        status = client.get(f"/pi_job/{job_id}").json()
        now = time.perf_counter() - started
        seen.setdefault(status["status"], now)
        if status["status"] in ("failed", "cancelled"):
            raise SystemExit(f"job {job_id} {status['status']}: {status.get('error')}")
        if status["status"] == "complete":
            return seen
        if now - last_print >= PROGRESS_EVERY_SECONDS:
            last_print = now
            progress = status.get("progress")
            eta = status.get("eta_seconds")
            shown = f"{progress * 100:5.1f} %" if progress is not None else "   -   "
            left = f", about {eta:,.0f} s left" if eta is not None else ""
            print(f"  {now:8.1f} s  {status['status']:<12} {shown}{left}", flush=True)
        time.sleep(1.0)


def _job_computed_line(stack: LocalStack, job_id: str) -> dict[str, Any] | None:
    """The calculator's "job computed" log line for the job (its times), if it wrote one."""
    try:
        lines = stack.log_path("calculator").read_text().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if job_id in line and '"job computed"' in line:
            found: dict[str, Any] = json.loads(line)
            return found
    return None


def download(client: httpx.Client, job_id: str, saved: Path) -> tuple[float, float, int]:
    """(seconds to the first byte, seconds in all, bytes): the zip streamed to a file, cut after
    its first third and resumed with Range, as `curl -C -` would."""
    url = f"/download_pi_job/{job_id}"
    started = time.perf_counter()
    first_byte = 0.0
    with saved.open("wb") as out, client.stream("GET", url) as response:
        response.raise_for_status()
        total = int(response.headers["content-length"])
        cut_at = total // 3
        for piece in response.iter_raw(PIECE):
            first_byte = first_byte or time.perf_counter() - started
            out.write(piece[: cut_at - out.tell()])
            if out.tell() >= cut_at:
                break  # the connection is cut here
    resume_from = saved.stat().st_size
    with (
        saved.open("ab") as out,
        client.stream("GET", url, headers={"Range": f"bytes={resume_from}-"}) as response,
    ):
        if response.status_code != 206:
            raise SystemExit(f"a resumed download answered {response.status_code}, not 206")
        for piece in response.iter_raw(PIECE):
            out.write(piece)
    size = saved.stat().st_size
    if size != total:
        raise SystemExit(f"the resumed zip has {size} bytes, the whole one {total}")
    return first_byte, time.perf_counter() - started, size


def digest_of_decimals(saved: Path, num: int) -> tuple[str, str, str]:
    """SHA-256 of the decimals after "3.", unzipped streaming; and their first and last 10."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(saved) as archive:
        (name,) = archive.namelist()
        with archive.open(name) as text:
            if text.read(2) != b"3.":
                raise SystemExit("the zip's text does not start with 3.")
            first = b""
            tail = b""
            count = 0
            while piece := text.read(PIECE):
                digest.update(piece)
                first = first or piece[:10]
                tail = (tail + piece)[-10:]
                count += len(piece)
    if count != num:
        raise SystemExit(f"the zip holds {count} decimals, not {num}")
    return digest.hexdigest(), first.decode(), tail.decode()


def run(num: int, stack: LocalStack, data_dir: Path) -> None:
    pids = {name: process.pid for name, process in stack.processes.items()}
    watch = MemoryWatch(pids)
    stages: list[tuple[str, float]] = []
    try:
        with httpx.Client(base_url=stack.url, timeout=600) as client:
            started = time.perf_counter()
            response = client.post("/pi_job", data={"num": str(num)})
            response.raise_for_status()
            job_id = response.json()["job_id"]
            stages.append(("submit (POST)", time.perf_counter() - started))
            print(f"job {job_id}: {num:,} decimals", flush=True)
            seen = wait_complete(client, job_id)
            waited = max(seen.values())
            stages.append(("queued to started", seen.get("in_progress", 0.0)))
            stages.append(
                ("started to complete (compute, log, view)", waited - seen.get("in_progress", 0.0))
            )
            computed = _job_computed_line(stack, job_id)
            if computed:
                compute = float(computed["compute_seconds"])
                stages.append(("  of which computing (the calculator's log)", compute))
                published = float(computed["seconds"]) - compute
                stages.append(
                    (f"  then publishing {computed['chunks_published']} chunks", published)
                )
            saved = data_dir / "download.zip"
            first_byte, seconds, size = download(client, job_id, saved)
            stages.append(("download: first byte (builds the zip once)", first_byte))
            stages.append((f"download: {size / 1e6:,.1f} MB zip, cut and resumed", seconds))
            started = time.perf_counter()
            sha256, first, last = digest_of_decimals(saved, num)
            stages.append(("unzip and SHA-256, streaming", time.perf_counter() - started))
            started = time.perf_counter()
            found = published_positions(client, num)
            searched = time.perf_counter() - started
            stages.append(("search the stored digits (OEIS A193940)", searched))
    finally:
        watch.stop()
    print()
    for stage, seconds in stages:
        print(f"{stage:<46} {seconds:10.1f} s")
    print()
    for name in sorted(watch.peak_mib):
        start = watch.started_mib.get(name)
        before = f" (at start {start:,.0f} MiB)" if start is not None else ""
        print(f"peak memory of {name:<30} {watch.peak_mib[name]:10,.0f} MiB{before}")
    print()
    print(f"decimals 1 to 10:           {first}")
    print(f"decimals {num - 9:,} to {num:,}: {last}")
    print(f"SHA-256 of the {num:,} decimals after '3.': {sha256}")
    for query, (position, published) in found.items():
        verdict = "the same" if position == published else "DIFFERENT"
        print(f"first {query} at position {position:,}; OEIS A193940: {published:,}: {verdict}")


# OEIS A193940: where 10^n first occurs in pi (the 3 is position 0, as /v1/pi/search counts):
# positions published from computations independent of this one.
FIRST_POWERS_OF_TEN = {"1000000": 10_359_802, "10000000": 13_310_435, "100000000": 172_330_849}


def published_positions(client: httpx.Client, num: int) -> dict[str, tuple[int, int]]:
    """For each published first position that the stored digits reach: (found, published)."""
    found = {}
    for query, published in FIRST_POWERS_OF_TEN.items():
        if published + len(query) <= num + 1:
            answer = client.get("/v1/pi/search", params={"q": query, "limit": 1})
            answer.raise_for_status()
            positions = answer.json()["positions"]
            found[query] = (positions[0] if positions else -1, published)
    return found


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=1_000_000_000)
    args = parser.parse_args()
    # Stopped with kill (or Ctrl-C where a background shell ignores it): still clean up.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with tempfile.TemporaryDirectory(prefix="bench-billion-") as tmp:
        data_dir = Path(tmp)
        broker = LocalBroker.on_free_ports(data_dir / "kafka")
        with broker:
            stack = LocalStack.on_free_ports(
                broker.bootstrap_servers,
                data_dir,
                log_to_files=True,
                extra_env={"PI_JOBS_MAX_NUM": str(max(args.num, 1_000_000_000))},
            )
            stack.start()
            try:
                stack.wait_ready()
                run(args.num, stack, data_dir)
            finally:
                stack.stop()


if __name__ == "__main__":
    main()
