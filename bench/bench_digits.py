"""Random access and search over stored digits, through all services as real processes.

    .venv/bin/python -m bench.bench_digits [--digits 100000000] [--repeat 20]

Stores `--digits` decimals (one job), then times over HTTP, one request at a time: GET /v1/pi
answers of 1,000 and 1,000,000 digits at random positions, and GET /v1/pi/search for queries
never asked before (so no answer is cached): absent 20-digit strings (a scan of every stored
digit), random 8-digit dates, random 6-digit strings. Beside each, measured in the same run on
the same digits in this process, the floor any server pays: the slice, or the scan. A benchmark,
not a test: nothing here passes or fails on a timing.
"""

import argparse
import mmap
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.bench_billion import published_positions
from bench.stack import running_stack

SEARCH_GOAL_SECONDS = 0.200  # over 100,000,000 stored digits (the goal)


def store(client: httpx.Client, num: int) -> float:
    """Seconds for a job of `num` decimals to complete (computed and stored)."""
    started = time.perf_counter()
    job_id = client.post("/pi_job", data={"num": str(num)}).json()["job_id"]
    shown = -1.0
    while (status := client.get(f"/pi_job/{job_id}").json())["status"] != "complete":
        assert status["status"] in ("queued", "in_progress"), status
        progress = status.get("progress") or 0.0
        if progress - shown >= 0.1:
            print(f"  storing {num:,} decimals: {progress:.0%}", flush=True)
            shown = progress
        time.sleep(0.5)
    return time.perf_counter() - started


def timed(call: Callable[[], object], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return sorted(seconds)


def row(name: str, seconds: list[float], floor: list[float], note: str = "") -> None:
    p99 = seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))]
    print(
        f"{name:<42} {len(seconds):>4} {statistics.median(seconds) * 1000:>9.1f} "
        f"{p99 * 1000:>9.1f} {statistics.median(floor) * 1000:>10.2f}  {note}"
    )


def ok(answer: httpx.Response) -> httpx.Response:
    assert answer.status_code == 200, answer.text[:300]
    return answer


def ranges(
    client: httpx.Client,
    text: mmap.mmap,
    positions: int,
    count: int,
    repeat: int,
    generator: random.Random,
) -> None:
    starts = [generator.randrange(0, positions - count) for _ in range(repeat)]
    asked, sliced = iter(starts), iter(starts)

    def read() -> None:
        ok(client.get("/v1/pi", params={"start": next(asked), "numberOfDigits": count}))

    def floor() -> None:
        start = next(sliced)
        text[start : start + count]

    row(f"GET /v1/pi, {count:,} digits", timed(read, repeat), timed(floor, repeat))


def report(client: httpx.Client, digits_file: Path, stored: int, repeat: int) -> None:
    positions = stored + 1
    started = time.perf_counter()
    ok(client.get("/v1/pi", params={"numberOfDigits": 1}))
    print(
        f"first read after the job: the digit file built in {time.perf_counter() - started:.2f} s"
    )
    with open(digits_file, "rb") as file:
        text = mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ)
    generator = random.Random(314159)
    print(f"{'call':<42} {'n':>4} {'median ms':>9} {'p99 ms':>9} {'floor ms':>10}")
    for count in (1_000, 1_000_000):
        ranges(client, text, positions, count, repeat * 5, generator)

    def searches(make_query: Callable[[], str], limit: int, name: str, note: str = "") -> None:
        queries = [make_query() for _ in range(repeat)]
        pending = iter(queries)
        seconds = timed(
            lambda: ok(client.get("/v1/pi/search", params={"q": next(pending), "limit": limit})),
            len(queries),
        )
        again = iter(queries)

        def scan() -> None:
            query, at = next(again).encode(), 0
            for _ in range(limit):
                at = text.find(query, at, positions) + 1
                if at == 0:
                    return

        row(name, seconds, timed(scan, len(queries)), note)

    def digits(n: int) -> Callable[[], str]:
        return lambda: "".join(generator.choice("0123456789") for _ in range(n))

    def date() -> str:
        day, month = generator.randint(1, 28), generator.randint(1, 12)
        return f"{day:02}{month:02}{generator.randint(1900, 2025)}"

    goal = f"goal <= {SEARCH_GOAL_SECONDS * 1000:.0f} ms at 100,000,000"
    searches(digits(20), 10, "search, 20 digits (absent: a full scan)", goal)
    searches(date, 1, "search, a date DDMMYYYY (limit 1)")
    searches(digits(6), 10, "search, 6 digits (limit 10)")
    print(f"stored positions searched: {positions:,} (the 3 and {stored:,} decimals)")
    for query, (position, published) in published_positions(client, stored).items():
        verdict = "the same" if position == published else "DIFFERENT"
        print(f"first {query} at position {position:,}; OEIS A193940: {published:,}: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=100_000_000, help="decimals to store")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with (
        running_stack() as (_, stack),
        httpx.Client(base_url=stack.url, timeout=600) as client,
    ):
        seconds = store(client, args.digits)
        print(f"{args.digits:,} decimals computed and stored in {seconds:.1f} s")
        report(client, stack.data_dir / "digits" / "pi-10.txt", args.digits, args.repeat)


if __name__ == "__main__":
    main()
