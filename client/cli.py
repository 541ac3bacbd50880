"""`pi-jobs`: submit, follow, download, list and cancel pi-jobs from a terminal or a script."""

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import httpx

from client.api import (
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    JobStatus,
    PiJobsApi,
)
from client.download import destination, filename_from, save_download
from client.progress import download_progress, job_progress, terminal_console

DEFAULT_URL = "http://localhost:3000"
STATUSES = ("queued", "in_progress", "complete", "failed", "cancelled")

EPILOG = """\
exit codes:
  0    success
  1    the job failed or was cancelled (submit --wait / --download)
  2    usage error, or the API refused the input (400/422, e.g. N above its maximum)
  3    no such job (404), or not complete yet (download)
  4    conflict (409): the job already finished (cancel), Idempotency-Key reused
  5    service unavailable or busy (429/502/503/504), connection refused, timed out:
       try again later
  6    any other HTTP error
  7    the download could not be written or failed verification (X-Content-SHA256)
  130  interrupted (Ctrl-C)
Errors go to stderr as one line: "pi-jobs: <message>".

environment:
  PI_JOBS_URL      the API's address when --url is not given (default http://localhost:3000)
  PI_JOBS_API_KEY  the API key when --key is not given (needed when the server requires keys)
"""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Usage errors as one line on stderr, exit code 2."""
        self.exit(EXIT_USAGE, f"pi-jobs: {message} (see {self.prog} --help)\n")


def whole_number(text: str) -> int:
    if not re.fullmatch(r"[0-9][0-9_]*", text.strip()):
        raise argparse.ArgumentTypeError(f"N must be a whole number like 1000, not {text!r}")
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"N must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("N must be at least 1")
    return value


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help="the API's address (default: $PI_JOBS_URL or http://localhost:3000)",
    )
    common.add_argument(
        "--key",
        default=argparse.SUPPRESS,
        help="the API key, when the server requires one (default: $PI_JOBS_API_KEY)",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print machine-readable JSON (one line) to stdout",
    )
    parser = Parser(
        prog="pi-jobs",
        description="Digits of pi as asynchronous jobs, from the pi-jobs HTTP API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("PI_JOBS_URL") or DEFAULT_URL,
        help="the API's address (default: $PI_JOBS_URL or http://localhost:3000)",
    )
    parser.add_argument(
        "--key",
        default=os.environ.get("PI_JOBS_API_KEY") or None,
        help="the API key, when the server requires one (default: $PI_JOBS_API_KEY)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=Parser
    )

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    submit = command("submit", "submit a job for N decimals of pi; prints its id")
    submit.add_argument("num", metavar="N", type=whole_number, help="how many digits")
    submit.add_argument(
        "--radix", type=int, choices=(10, 16), default=10, help="16: hexadecimal digits"
    )
    submit.add_argument("--wait", action="store_true", help="wait for it, with a progress bar")
    submit.add_argument(
        "--download", metavar="PATH", type=Path, help="wait, then download the zip to PATH"
    )
    submit.add_argument(
        "--idempotency-key", metavar="KEY", help="the same KEY always gives the same job"
    )

    status = command("status", "show a job's status")
    status.add_argument("job_id", metavar="ID")

    download = command("download", "download a complete job's zip")
    download.add_argument("job_id", metavar="ID")
    download.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        type=Path,
        help="file or existing directory (default: the server's filename, here)",
    )

    listing = command("list", "list jobs, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only jobs with this status")
    listing.add_argument("--limit", type=whole_number, default=20, help="at most this many")
    listing.add_argument("--cursor", help="continue from a previous list's next_cursor")

    cancel = command("cancel", "cancel a queued or running job")
    cancel.add_argument("job_id", metavar="ID")

    digits = command("digits", "print stored digits of pi at any position (0 is the 3)")
    digits.add_argument("--start", type=position, default=0, help="first position (default 0)")
    digits.add_argument(
        "--count", type=whole_number, default=100, help="how many digits (default 100)"
    )
    digits.add_argument("--radix", type=int, choices=(10, 16), default=10, help="10 or 16")

    search = command("search", "where a string of digits first occurs in the stored digits")
    search.add_argument("query", metavar="DIGITS", help="1 to 20 digits, e.g. 31415 or a date")
    search.add_argument("--limit", type=whole_number, default=10, help="at most this many")
    search.add_argument("--radix", type=int, choices=(10, 16), default=10, help="10 or 16")
    return parser


def position(text: str) -> int:
    """A position in the digits: 0 (the 3) or more."""
    return 0 if text.strip() == "0" else whole_number(text)


def emit_json(document: Any) -> None:
    print(json.dumps(document), flush=True)


def note(message: str) -> None:
    """Friendly remarks for a person at a terminal; scripts see none."""
    if sys.stderr.isatty():
        print(message, file=sys.stderr)


def show_status(status: JobStatus) -> None:
    for key, value in status.items():
        if key != "success":
            print(f"{key + ':':<18}{'-' if value is None else value}")


def show_jobs(jobs: list[JobStatus]) -> None:
    print(f"{'JOB_ID':<32}  {'STATUS':<11}  {'NUM':>10}  {'PROGRESS':>8}  REQUESTED_AT")
    for job in jobs:
        progress = job.get("progress")
        shown = f"{progress:.0%}" if isinstance(progress, int | float) else "-"
        print(
            f"{job.get('job_id', '?'):<32}  {job.get('status', '?'):<11}  "
            f"{job.get('num', '?'):>10}  {shown:>8}  {job.get('requested_at') or '-'}"
        )


def next_page(args: argparse.Namespace, cursor: str) -> str:
    """The command that lists the next page: the same filters, from `cursor`."""
    status = f" --status {args.status}" if args.status else ""
    return f"pi-jobs list{status} --limit {args.limit} --cursor {cursor}"


def wait_for(api: PiJobsApi, job_id: str, num: int) -> JobStatus:
    with job_progress(terminal_console(), num) as update:
        final = api.wait(job_id, update)
    if final["status"] == "complete":
        duration = final.get("duration_seconds")
        took = f" in {duration:.2f} s" if isinstance(duration, int | float) else ""
        note(f"job {job_id} complete: {num:,} digits{took}")
    return final


def fetch(api: PiJobsApi, job_id: str, output: Path | None) -> tuple[Path, str]:
    with api.download(job_id) as response:
        target = destination(output, filename_from(response, job_id))
        length = response.headers.get("content-length")
        total = int(length) if length and length.isdigit() else None
        with download_progress(terminal_console(), target.name, total) as advance:
            sha256 = save_download(response, target, advance)
    return target, sha256


def say_saved(path: Path, as_json: bool) -> None:
    """Scripts read the path alone on stdout; a person at a terminal, who sees both streams,
    reads it once, in words."""
    saved = f"saved {path} (SHA-256 of the digits verified)"
    if not as_json and sys.stdout.isatty():
        print(saved)
        return
    note(saved)
    if not as_json:
        print(path)


def show_positions(found: JobStatus) -> None:
    positions = found.get("positions") or []
    searched = found.get("digits_searched")
    where = ", ".join(str(p) for p in positions) if positions else "not found"
    print(where)
    if isinstance(searched, int):
        note(f"searched {searched:,} of {found.get('digits_stored', 0):,} stored positions")


def submit(args: argparse.Namespace, api: PiJobsApi) -> None:
    job_id = api.submit(args.num, args.idempotency_key, args.radix)
    if not (args.wait or args.download):
        if args.json:
            emit_json({"success": True, "job_id": job_id})
        else:
            print(job_id)
        return
    if not args.json:
        print(job_id, flush=True)  # a script can read the id before the wait is over
    final = wait_for(api, job_id, args.num)
    if final["status"] != "complete":
        if args.json:
            emit_json(final)
        reason = f": {final['error']}" if final.get("error") else ""
        raise CliError(EXIT_JOB_FAILED, f"job {job_id} {final['status']}{reason}")
    if args.download:
        path, sha256 = fetch(api, job_id, args.download)
        final = {**final, "path": str(path), "sha256": sha256}
        say_saved(path, args.json)
    if args.json:
        emit_json(final)


def run(args: argparse.Namespace, api: PiJobsApi) -> int:
    if args.command == "submit":
        submit(args, api)
    elif args.command == "status":
        status = api.status(args.job_id)
        if args.json:
            emit_json(status)
        else:
            show_status(status)
    elif args.command == "download":
        path, sha256 = fetch(api, args.job_id, args.output)
        say_saved(path, args.json)
        if args.json:
            emit_json({"success": True, "job_id": args.job_id, "path": str(path), "sha256": sha256})
    elif args.command == "list":
        page = api.list_jobs(args.status, args.limit, args.cursor)
        if args.json:
            emit_json(page)
        else:
            show_jobs(page.get("jobs") or [])
            if page.get("next_cursor"):
                sys.stdout.flush()  # the hint comes after the table, even through a pipe
                note(f"more jobs: {next_page(args, page['next_cursor'])}")
    elif args.command == "digits":
        content = api.digits(args.start, args.count, args.radix)
        if args.json:
            emit_json({"content": content})
        else:
            print(content)
    elif args.command == "search":
        found = api.search(args.query, args.limit, args.radix)
        if args.json:
            emit_json(found)
        else:
            show_positions(found)
    elif args.command == "cancel":
        answer = api.cancel(args.job_id)
        if args.json:
            emit_json(answer)
        else:
            print(f"{args.job_id} {answer.get('status')}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    """The console script; `transport` stands in for the network in unit tests."""
    args = build_parser().parse_args(argv)
    try:
        with PiJobsApi(args.url, transport, key=args.key) as api:
            return run(args, api)
    except CliError as error:
        print(f"pi-jobs: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("pi-jobs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
