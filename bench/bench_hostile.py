"""One hostile client against pi-jobs with its default limits, and a well-behaved one beside it.

    make bench-hostile              # or: .venv/bin/python -m bench.bench_hostile [--help]

The attacker (127.0.0.2) holds 300 slowloris connections, tries to hold 20,000 idle ones and
opens 110 downloads of a 10,000,000-decimal zip that it never reads; meanwhile the victim
(127.0.0.1) reads a job's status over and over, asks /readyz, and downloads a small job. Prints
the victim's latencies with and without the attack (the same run), what the attacker got, and
the downloader's memory before, during and after. Timings, not tests: the tests of the same
attacks are tests/e2e/test_hostile_clients.py.
"""

import argparse
import resource
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx

from bench.load import rss_mib
from bench.stack import running_stack
from deploy.local_stack import LocalStack
from tests.e2e.helpers import download_text, submit, wait_complete

VICTIM, ATTACKER = "127.0.0.1", "127.0.0.2"


def victim_latencies(url: str, job_id: str, seconds: float) -> tuple[list[float], Counter[str]]:
    """Status reads (ms) for `seconds`, with a /readyz every tenth; the answers counted."""
    times: list[float] = []
    answers: Counter[str] = Counter()
    transport = httpx.HTTPTransport(local_address=VICTIM)
    with httpx.Client(base_url=url, transport=transport, timeout=30) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            try:
                status = client.get(f"/pi_job/{job_id}").status_code
            except httpx.HTTPError as error:
                answers[f"status {type(error).__name__}"] += 1
                continue
            times.append((time.perf_counter() - started) * 1000)
            answers[f"status {status}"] += 1
            if len(times) % 10 == 0:
                answers[f"readyz {client.get('/readyz').status_code}"] += 1
    return times, answers


def summary(times: list[float]) -> str:
    if len(times) < 2:
        return "no answers"
    cuts = statistics.quantiles(times, n=100)
    return f"n={len(times)}, p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms, max {max(times):.0f} ms"


def connect(port: int) -> socket.socket | None:
    sock = socket.socket()
    sock.bind((ATTACKER, 0))
    try:
        sock.connect(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def refused(sock: socket.socket) -> bool:
    """Whether the server answered at once (a 503) rather than keeping the connection."""
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    except OSError:
        return True


@contextmanager
def attack(port: int, slowloris: int, idle: int, stop: threading.Event) -> Iterator[Counter[str]]:
    """Slowloris connections trickling a head, and idle ones, held until the block ends."""
    outcome: Counter[str] = Counter()

    def trickle() -> None:
        """Each connection sends a byte of a never-ending head every half second; one the
        server closes is opened again."""

        def opened() -> socket.socket | None:
            sock = connect(port)
            if sock is not None:
                sock.send(b"GET /pi_jobs HTTP/1.1\r\nHost: x\r\nX-Pad: ")
            return sock

        held = [opened() for _ in range(slowloris)]
        while not stop.wait(0.5):
            for index, sock in enumerate(held):
                try:
                    if sock is None:
                        raise OSError
                    sock.send(b"a")
                except OSError:
                    if sock is not None:
                        sock.close()
                        outcome["slowloris: closed by the server"] += 1
                    held[index] = opened()
        for sock in held:
            if sock is not None:
                sock.close()

    def hold_idle() -> None:
        held = []
        for _ in range(idle):
            sock = connect(port)
            if sock is None:
                outcome["idle: connect failed"] += 1
                continue
            held.append(sock)
            if stop.is_set():
                break
        time.sleep(0.2)  # let the server's refusals arrive before counting them
        for sock in held:
            outcome["idle: refused at once" if refused(sock) else "idle: kept"] += 1
        stop.wait()
        for sock in held:
            sock.close()

    threads = [threading.Thread(target=trickle), threading.Thread(target=hold_idle)]
    for thread in threads:
        thread.start()
    try:
        yield outcome
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def slow_downloads(port: int, job_id: str, count: int) -> tuple[ExitStack, Counter[int]]:
    """`count` downloads from the attacker that read the head and nothing more."""
    held = ExitStack()
    statuses: Counter[int] = Counter()
    request = f"GET /download_pi_job/{job_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1460)
        sock.bind((ATTACKER, 0))
        sock.connect(("127.0.0.1", port))
        held.enter_context(sock)
        sock.sendall(request)
        statuses[int(sock.recv(12)[9:12])] += 1
    return held, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="each victim measurement")
    parser.add_argument("--slowloris", type=int, default=300)
    parser.add_argument("--idle", type=int, default=20_000)
    parser.add_argument("--slow-downloads", type=int, default=110)
    parser.add_argument("--download-digits", type=int, default=10_000_000)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with running_stack() as (_, stack):
        run(stack, args)


def run(stack: LocalStack, args: argparse.Namespace) -> None:
    with httpx.Client(base_url=stack.url, timeout=600) as client:
        small = submit(client, 12)
        big = submit(client, args.download_digits)
        wait_complete(client, big, timeout=600)
        wait_complete(client, small)
    downloader = stack.processes["downloader"].pid
    print(f"\nEach victim measurement: {args.seconds:g} s of status reads from {VICTIM}")
    times, answers = victim_latencies(stack.url, small, args.seconds)
    print(f"without an attack: {summary(times)}; {dict(answers)}")

    stop = threading.Event()
    with attack(stack.api_port, args.slowloris, args.idle, stop) as outcome:
        times, answers = victim_latencies(stack.url, small, args.seconds)
        print(
            f"with {args.slowloris} slowloris + {args.idle:,} idle connections from {ATTACKER}: "
            f"{summary(times)}; {dict(answers)}"
        )
    print(f"the attacker got: {dict(outcome)}")

    idle_mib = rss_mib(downloader)
    held, statuses = slow_downloads(stack.api_port, big, args.slow_downloads)
    with held:
        transport = httpx.HTTPTransport(local_address=VICTIM)
        with httpx.Client(base_url=stack.url, transport=transport, timeout=60) as victim:
            started = time.perf_counter()
            text = download_text(victim, small)
            took = (time.perf_counter() - started) * 1000
            ready = victim.get("/readyz").status_code
        during_mib = rss_mib(downloader)
        print(
            f"{args.slow_downloads} downloads of the {args.download_digits:,}-decimal zip never "
            f"read: {dict(statuses)}; meanwhile the victim's 12-decimal download took "
            f"{took:.1f} ms ({'right' if text == '3.141592653589' else 'WRONG'}), /readyz {ready}"
        )
    print(
        f"downloader memory: {idle_mib:.0f} MiB before, {during_mib:.0f} MiB during, "
        f"{rss_mib(downloader):.0f} MiB after"
    )


if __name__ == "__main__":
    main()
