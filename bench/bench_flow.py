"""End-to-end figures with every part running as a real process on this machine.

    .venv/bin/python -m bench.bench_flow [--download-digits 10000000]

Starts its own broker and services on free ports, then prints POST-to-complete latencies
(a job that computes, jobs served from stored digits) and download first-byte time and throughput.
A benchmark, not a test: nothing here passes or fails on a timing.
"""

import argparse
import statistics
import threading
import time

import httpx

from bench.load import rss_mib
from bench.stack import running_stack
from deploy.local_stack import LocalStack


class PeakMemory:
    """Samples the resident memory of each service (with its child processes) in a thread."""

    def __init__(self, stack: LocalStack) -> None:
        self._pids = {name: p.pid for name, p in stack.processes.items()}
        self.peak_mib = dict.fromkeys(self._pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            for name, pid in self._pids.items():
                self.peak_mib[name] = max(self.peak_mib[name], rss_mib(pid))


def post_to_complete(client: httpx.Client, num: int) -> float:
    """Seconds from sending the POST to the first status GET that says complete."""
    started = time.perf_counter()
    job_id = client.post("/pi_job", data={"num": str(num)}).json()["job_id"]
    while client.get(f"/pi_job/{job_id}").json()["status"] != "complete":
        time.sleep(0.001)
    return time.perf_counter() - started


def download(client: httpx.Client, num: int) -> tuple[float, float, int]:
    job_id = client.post("/pi_job", data={"num": str(num)}).json()["job_id"]
    while client.get(f"/pi_job/{job_id}").json()["status"] != "complete":
        time.sleep(0.01)
    started = time.perf_counter()
    first_byte = None
    size = 0
    with client.stream("GET", f"/download_pi_job/{job_id}") as response:
        for chunk in response.iter_raw():
            first_byte = first_byte or time.perf_counter() - started
            size += len(chunk)
    return first_byte or 0.0, time.perf_counter() - started, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=1000, help="digits of the small jobs")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--download-digits", type=int, default=10_000_000)
    parser.add_argument("--huge", type=int, default=0, help="only: one job this large, with memory")
    parser.add_argument("--big", type=int, default=30_000_000, help="the job small ones run beside")
    args = parser.parse_args()
    with running_stack() as (_, stack), httpx.Client(base_url=stack.url, timeout=600) as client:
        if args.huge:
            huge(client, stack, args.huge)
        else:
            report(client, args)


def small_while_big(client: httpx.Client, args: argparse.Namespace) -> None:
    big = client.post("/pi_job", data={"num": str(args.big)}).json()["job_id"]
    while client.get(f"/pi_job/{big}").json()["status"] != "in_progress":
        time.sleep(0.01)
    latencies: list[float] = []
    while (
        len(latencies) < args.repeat and client.get(f"/pi_job/{big}").json()["status"] != "complete"
    ):
        latencies.append(post_to_complete(client, args.small))
    latencies.sort()
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
    print(
        f"{args.small}-digit jobs while a {args.big}-digit job computes (n={len(latencies)}): "
        f"median {statistics.median(latencies) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"
    )
    client.delete(f"/pi_job/{big}")


def huge(client: httpx.Client, stack: LocalStack, num: int) -> None:
    with PeakMemory(stack) as memory:
        seconds = post_to_complete(client, num)
        first_byte, total, size = download(client, num)
    print(f"{num:,}-digit job: POST to complete in {seconds:.1f} s")
    print(
        f"download: first byte {first_byte * 1000:.0f} ms, {size / 1e6:.0f} MB zip in {total:.1f} s"
    )
    for name, mib in memory.peak_mib.items():
        print(f"peak memory of {name} (with its child processes): {mib:,.0f} MiB")


def report(client: httpx.Client, args: argparse.Namespace) -> None:
    first = post_to_complete(client, args.small)
    print(f"{args.small}-digit job, first (computed):         {first * 1000:8.1f} ms")
    stored = sorted(post_to_complete(client, args.small) for _ in range(args.repeat))
    p95 = stored[max(0, int(len(stored) * 0.95) - 1)]
    print(
        f"{args.small}-digit job, from stored digits (n={args.repeat}): "
        f"median {statistics.median(stored) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
        f"max {stored[-1] * 1000:.1f} ms"
    )
    small_while_big(client, args)
    computed = post_to_complete(client, args.download_digits)
    print(f"{args.download_digits}-digit job (computed):     {computed:8.2f} s")
    first_byte, total, size = download(client, args.download_digits)
    print(
        f"download of {args.download_digits} digits: first byte {first_byte * 1000:.1f} ms, "
        f"{size / 1e6:.1f} MB zip in {total:.2f} s "
        f"({args.download_digits / total / 1e6:.1f} M digits/s)"
    )


if __name__ == "__main__":
    main()
