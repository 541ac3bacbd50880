"""pi-jobs under load, side by side with the original app (a Node.js peer) in the same run.

    make bench-load                  # or: .venv/bin/python -m bench.bench_load [--help]

Starts a broker, the services (per-client quota lifted) and the Node peer on free ports, loads
each with the same `wrk -t1 -c32` and prints one table, then the figures pi-jobs has no peer for:
POST-to-complete latency, a sustained submission rate, open event streams and downloads.
A benchmark, not a test: nothing here passes or fails on a timing.
"""

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import httpx

from bench.load import (
    CpuMeter,
    LoadResult,
    constant_rate,
    form_post,
    java_broker_pid,
    peer_app,
    require_wrk,
    wrk,
)
from bench.stack import running_stack
from deploy.local_stack import LocalStack
from services.shared.kafka import log_end_offsets
from services.shared.settings import KafkaSettings
from services.shared.sqlite_view import SqliteView

# All load comes from one address here, which the per-client limits exist to hold back.
_NO_PER_CLIENT_LIMITS = {
    "PI_JOBS_SUBMISSIONS_PER_SECOND": "1e9",
    "PI_JOBS_SUBMISSION_BURST": "1000000",
    "PI_JOBS_MAX_CONNECTIONS_PER_CLIENT": "100000",
    "PI_JOBS_MAX_DOWNLOADS_PER_CLIENT": "100000",
}


def _row(call: str, peer: LoadResult | None, ours: LoadResult) -> str:
    def cell(result: LoadResult) -> str:
        return (
            f"{result.per_second:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms, {result.errors} errors"
        )

    ratio = f"{ours.per_second / peer.per_second:.2f}" if peer else "-"
    return f"| {call} | {cell(peer) if peer else '-'} | {cell(ours)} | {ratio} |"


def submit(client: httpx.Client, num: int) -> str:
    job_id: str = client.post("/pi_job", data={"num": str(num)}).json()["job_id"]
    return job_id


def wait_complete(client: httpx.Client, job_id: str | int, poll: float = 0.005) -> None:
    while client.get(f"/pi_job/{job_id}").json()["status"] != "complete":
        time.sleep(poll)


def side_by_side(stack: LocalStack, peer: str, seconds: float, connections: int) -> None:
    """The table: status reads and submissions, pi-jobs against the peer."""
    with httpx.Client(base_url=stack.url, timeout=60) as ours, httpx.Client(base_url=peer) as node:
        job_id = submit(ours, 12)
        wait_complete(ours, job_id)
        peer_job = node.post("/pi_job", data={"num": "12"}).json()["job_id"]
        wait_complete(node, peer_job)
    # Warm-up, for both: V8's and the JVM's compilers, caches, connection pools.
    for base, job in ((peer, peer_job), (stack.url, job_id)):
        wrk(f"{base}/pi_job/{job}", 3, connections)
        wrk(f"{base}/pi_job", 3, connections, body="num=12")
    get_peer = wrk(f"{peer}/pi_job/{peer_job}", seconds, connections)
    get_ours = wrk(f"{stack.url}/pi_job/{job_id}", seconds, connections)
    post_peer = wrk(f"{peer}/pi_job", seconds, connections, body="num=12")
    post_ours = wrk(f"{stack.url}/pi_job", seconds, connections, body="num=12")
    print(f"\n### wrk -t1 -c{connections} -d{seconds:g}s, one after the other on this machine\n")
    print("| call | original app (Node.js peer) | pi-jobs | ratio |")
    print("|---|---|---|---|")
    print(_row("`GET /pi_job/{id}` (a complete job)", get_peer, get_ours))
    print(_row("`POST /pi_job` num=12", post_peer, post_ours))


def post_to_complete(stack: LocalStack, jobs: int) -> None:
    """A 1000-digit job from POST to the first status GET that says complete, polling every 5 ms."""
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        wait_complete(client, submit(client, 1000))  # the digits are stored from here on
        times = []
        for _ in range(jobs):
            started = time.perf_counter()
            wait_complete(client, submit(client, 1000))
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    print(
        f"\n1000-digit job, POST to a GET saying complete (n={jobs}, polling every 5 ms): "
        f"p50 {statistics.median(times):.1f} ms, p99 {times[int(len(times) * 0.99) - 1]:.1f} ms "
        "(goal: p50 <= 20 ms, p99 <= 60 ms)"
    )


def _service_pids(stack: LocalStack, broker_port: int) -> dict[str, int]:
    pids = {name: process.pid for name, process in stack.processes.items()}
    if (broker := java_broker_pid(broker_port)) is not None:
        pids["kafka"] = broker
    return pids


def _seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "more than 120 s"


def _log_ends(stack: LocalStack) -> dict[tuple[str, int], int]:
    settings = KafkaSettings(
        kafka_bootstrap_servers=stack.bootstrap_servers, pi_jobs_topic_prefix=stack.topic_prefix
    )
    return asyncio.run(log_end_offsets(settings, [settings.events_topic, settings.digits_topic]))


def sustained(stack: LocalStack, broker_port: int, rate: float, seconds: float) -> None:
    """Submissions at a constant rate from many connections; then how soon everything is done:
    the view read up to the end of the log as it was when the last submission was answered, and
    no job left that is not complete."""
    view = SqliteView(stack.data_dir / "view.sqlite3")
    request = form_post("/pi_job", "num=12")
    meter = CpuMeter(_service_pids(stack, broker_port)).start()
    result = asyncio.run(constant_rate("127.0.0.1", stack.api_port, request, rate, seconds))
    cores = meter.stop()
    ended = time.monotonic()
    ends = _log_ends(stack)
    caught_up_after = complete_after = None
    while time.monotonic() - ended < 120 and complete_after is None:
        waited = time.monotonic() - ended
        positions = view.positions()
        if caught_up_after is None and all(positions.get(tp, 0) >= e for tp, e in ends.items()):
            caught_up_after = waited
        counts = view.count_by_status()
        if (
            caught_up_after is not None
            and counts.get("queued", 0) + counts.get("in_progress", 0) == 0
        ):
            complete_after = waited
        time.sleep(0.05)
    print(
        f"\nSustained: {rate:,.0f} submissions/s for {seconds:g} s over 200 connections: "
        f"sent {result.sent:,} in {result.seconds:.1f} s; answers {dict(result.statuses)}; "
        f"{result.behind} left late; latency p50 {result.percentile(50):.1f} ms, "
        f"p99 {result.percentile(99):.1f} ms"
    )
    print(
        f"after the last answer: the view had read the log to its end {_seconds(caught_up_after)}"
        f" later, and every job was complete {_seconds(complete_after)} later "
        f"({view.count_by_status()})"
    )
    print("CPU while it ran (cores): " + ", ".join(f"{k} {v:.2f}" for k, v in cores.items()))
    view.close()


async def _open_streams(port: int, path: str, count: int) -> list[asyncio.StreamWriter]:
    async def open_one() -> asyncio.StreamWriter:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        await reader.readuntil(b"\n\n")  # the first event: the stream is live
        return writer

    return list(await asyncio.gather(*(open_one() for _ in range(count))))


def streams(stack: LocalStack, count: int, seconds: float) -> None:
    """`count` event streams open on a job that is not changing: their cost, GETs beside them."""
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        complete_job = submit(client, 12)
        wait_complete(client, complete_job)
        stack.stop("calculator")  # so the followed job stays queued: nothing changes
        job_id = submit(client, 12)
    get_alone = wrk(f"{stack.url}/pi_job/{complete_job}", seconds)

    async def run() -> None:
        writers = await _open_streams(stack.api_port, f"/pi_job/{job_id}/events", count)
        try:
            api = {"api": stack.processes["api"].pid}
            meter = CpuMeter(api).start()
            await asyncio.sleep(seconds)
            idle = meter.stop()["api"]
            with_streams = await asyncio.to_thread(
                wrk, f"{stack.url}/pi_job/{complete_job}", seconds
            )
            print(
                f"\n{count} open event streams on a job that is not changing: the API used "
                f"{idle:.3f} cores over {seconds:g} s (goal < 0.05)"
            )
            print(
                f"GET of a complete job beside them: {with_streams.per_second:,.0f} req/s, "
                f"p99 {with_streams.p99_ms:.1f} ms; without them: {get_alone.per_second:,.0f} "
                f"req/s, p99 {get_alone.p99_ms:.1f} ms; ratio "
                f"{with_streams.per_second / get_alone.per_second:.2f} (goal >= 0.9)"
            )
        finally:
            for writer in writers:
                writer.close()

    try:
        asyncio.run(run())
    finally:
        stack.start("calculator")
        stack.wait_ready()


def downloads(stack: LocalStack, num: int, seconds: float, connections: int) -> None:
    with httpx.Client(base_url=stack.url, timeout=600) as client:
        job_id = submit(client, num)
        wait_complete(client, job_id, poll=0.05)
        size = len(client.get(f"/download_pi_job/{job_id}").content)
    pids = {"api": stack.processes["api"].pid, "downloader": stack.processes["downloader"].pid}
    meter = CpuMeter(pids).start()
    result = wrk(f"{stack.url}/download_pi_job/{job_id}", seconds, connections)
    cores = meter.stop()
    per_request = {k: v * result.seconds / max(result.requests, 1) * 1000 for k, v in cores.items()}
    print(
        f"\nGET /download_pi_job of a {num:,}-digit job ({size / 1000:.0f} KB zip), "
        f"{connections} connections: {result.per_second:,.0f} req/s "
        f"({result.bytes / result.seconds / 1e6:.1f} MB/s), p50 {result.p50_ms:.1f} ms, "
        f"p99 {result.p99_ms:.1f} ms, {result.errors} errors (goal >= 1,000 req/s)"
    )
    print("CPU per download (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in per_request.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=2000, help="sustained submissions/s")
    parser.add_argument("--sustained-seconds", type=float, default=60)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--download-digits", type=int, default=1_000_000)
    parser.add_argument(
        "--only",
        default="table,latency,streams,downloads,sustained",
        help="comma-separated parts to run",
    )
    args = parser.parse_args()
    parts = set(args.only.split(","))
    require_wrk()
    with peer_app() as peer, running_stack(_NO_PER_CLIENT_LIMITS) as (broker, stack):
        # As a system that has been running: the JVM's compiler has done its work.
        wrk(f"{stack.url}/pi_job", 10, args.connections, body="num=12")
        steps: list[tuple[str, Callable[[], object]]] = [
            ("table", lambda: side_by_side(stack, peer, args.seconds, args.connections)),
            ("latency", lambda: post_to_complete(stack, args.latency_jobs)),
            ("streams", lambda: streams(stack, args.streams, args.seconds)),
            (
                "downloads",
                lambda: downloads(stack, args.download_digits, args.seconds, args.connections),
            ),
            ("sustained", lambda: sustained(stack, broker.port, args.rate, args.sustained_seconds)),
        ]
        for name, step in steps:
            if name in parts:
                step()


if __name__ == "__main__":
    main()
