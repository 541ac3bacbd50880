"""The pi-jobs CLI: argument parsing, exit codes, SSE parsing, waiting and downloading.

httpx.MockTransport plays the server here; tests/e2e/test_cli.py runs the CLI against the real one.
"""

import hashlib
import io
import json
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

import client.api
from client.api import EXIT_BAD_DOWNLOAD, CliError, PiJobsApi, error_message, exit_code_for
from client.cli import build_parser, main
from client.download import destination, filename_from
from client.progress import format_eta
from client.sse import SseEvent, parse_sse

JOB = "0123456789abcdef0123456789abcdef"
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    """Polling goes at full speed; the clock still runs."""
    monkeypatch.setattr(
        client.api, "time", SimpleNamespace(sleep=lambda _: None, monotonic=time.monotonic)
    )


def status(state: str, **fields: Any) -> dict[str, Any]:
    return {"success": True, "job_id": JOB, "num": 12, "status": state, "progress": None, **fields}


def error(code: int, message: str) -> httpx.Response:
    return httpx.Response(code, json={"success": False, "error": message})


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: status\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def run(
    argv: list[str], handler: Handler, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    code = main(["--url", "http://pi.test", *argv], httpx.MockTransport(handler))
    out, err = capsys.readouterr()
    return code, out, err


def zipped(text: str, name: str = f"digits_of_pi_{JOB}.txt") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


def download_answer(text: str, sha256: str | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        content=zipped(text),
        headers={
            "content-type": "application/zip",
            "content-disposition": f'attachment; filename="digits_of_pi_{JOB}.zip"',
            "x-content-sha256": sha256 or hashlib.sha256(text.encode()).hexdigest(),
        },
    )


# --- parsing -------------------------------------------------------------------------------


def test_submit_arguments() -> None:
    args = build_parser().parse_args(["submit", "1_000", "--wait", "--download", "out.zip"])
    assert (args.command, args.num, args.wait, args.download) == (
        "submit",
        1000,
        True,
        Path("out.zip"),
    )


@pytest.mark.parametrize("bad", ["abc", "0", "-5", "1.5", "", "١٢"])
def test_a_bad_n_is_a_usage_error_on_one_line(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["submit", bad])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("pi-jobs: ") and err.count("\n") == 1


def test_unknown_command_and_missing_command_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["frobnicate"], ["status"], ["list", "--status", "sleeping"]):
        with pytest.raises(SystemExit) as stop:
            build_parser().parse_args(argv)
        assert stop.value.code == 2, argv
    capsys.readouterr()


def test_url_from_environment_option_before_or_after_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PI_JOBS_URL", raising=False)
    assert build_parser().parse_args(["list"]).url == "http://localhost:3000"
    monkeypatch.setenv("PI_JOBS_URL", "http://env.test:1")
    assert build_parser().parse_args(["list"]).url == "http://env.test:1"
    assert build_parser().parse_args(["--url", "http://a", "list"]).url == "http://a"
    assert build_parser().parse_args(["list", "--url", "http://b"]).url == "http://b"
    assert build_parser().parse_args(["--json", "list"]).json is True
    assert build_parser().parse_args(["list", "--json"]).json is True
    assert build_parser().parse_args(["list"]).json is False


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for line in ("0    success", "3    no such job", "5    service unavailable", "PI_JOBS_URL"):
        assert line in out


# --- exit codes and messages ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [
        (400, 2),
        (422, 2),
        (404, 3),
        (409, 4),
        (429, 5),
        (502, 5),
        (503, 5),
        (504, 5),
        (413, 6),
        (500, 6),
    ],
)
def test_exit_code_for_http_status(code: int, exit_code: int) -> None:
    assert exit_code_for(code) == exit_code


def test_error_message_is_the_api_error_field_or_the_status_line() -> None:
    assert error_message(error(404, "no job with\nid 'x'")) == "no job with id 'x'"
    assert error_message(httpx.Response(502, text="<html>")) == "HTTP 502 Bad Gateway"


@pytest.mark.parametrize(
    ("answer", "exit_code"),
    [
        (error(404, "no job with id 'x'"), 3),
        (error(503, "the job queue is unavailable"), 5),
        (error(500, "boom"), 6),
        (httpx.Response(200, text="not json"), 6),
    ],
)
def test_status_errors_print_one_line_and_exit_with_the_mapped_code(
    answer: httpx.Response, exit_code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["status", "x"], lambda _: answer, capsys)
    assert code == exit_code
    assert out == ""
    assert err.startswith("pi-jobs: ") and err.count("\n") == 1


def test_the_api_refusing_n_exits_2_with_its_message(capsys: pytest.CaptureFixture[str]) -> None:
    message = "num must be a whole number from 1 to 10000000, got 99999999"
    code, _, err = run(["submit", "99999999"], lambda _: error(422, message), capsys)
    assert (code, err) == (2, f"pi-jobs: {message}\n")


def test_connection_refused_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    code, _, err = run(["list"], refuse, capsys)
    assert code == 5
    assert err == "pi-jobs: cannot reach http://pi.test: [Errno 111] Connection refused\n"


def test_cancel_maps_409_to_4_and_prints_the_status(capsys: pytest.CaptureFixture[str]) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        assert request.method == "DELETE"
        if request.url.path.endswith("done"):
            return error(409, "job done is already complete: nothing to cancel")
        return httpx.Response(200, json={"success": True, "job_id": JOB, "status": "cancelled"})

    assert run(["cancel", JOB], server, capsys)[:2] == (0, f"{JOB} cancelled\n")
    code, _, err = run(["cancel", "done"], server, capsys)
    assert (code, err) == (4, "pi-jobs: job done is already complete: nothing to cancel\n")


# --- commands against a stand-in server ---------------------------------------------------


def test_submit_sends_json_and_the_idempotency_key(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True, "job_id": JOB})

    assert run(["submit", "12", "--idempotency-key", "k1"], server, capsys)[:2] == (0, JOB + "\n")
    assert run(["submit", "12", "--json"], server, capsys)[1] == (
        json.dumps({"success": True, "job_id": JOB}) + "\n"
    )
    assert json.loads(seen[0].content) == {"num": 12}
    assert seen[0].headers["idempotency-key"] == "k1"
    assert "idempotency-key" not in seen[1].headers


def test_list_passes_filters_and_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/pi_jobs"
        assert dict(request.url.params) == {"status": "complete", "limit": "5", "cursor": "c1"}
        jobs = [status("complete", progress=1.0, requested_at="2025-01-01T00:00:00Z")]
        return httpx.Response(200, json={"success": True, "jobs": jobs, "next_cursor": None})

    argv = ["list", "--status", "complete", "--limit", "5", "--cursor", "c1"]
    code, out, _ = run(argv, server, capsys)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["JOB_ID", "STATUS", "NUM", "PROGRESS", "REQUESTED_AT"]
    assert row.split() == [JOB, "complete", "12", "100%", "2025-01-01T00:00:00Z"]
    assert json.loads(run([*argv, "--json"], server, capsys)[1])["jobs"][0]["job_id"] == JOB


def test_a_full_page_ends_with_the_command_for_the_next_one_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        jobs = [status("complete", progress=1.0, requested_at="2025-01-01T00:00:00Z")]
        return httpx.Response(200, json={"success": True, "jobs": jobs, "next_cursor": "c2"})

    argv = ["list", "--status", "complete", "--limit", "1"]
    assert run(argv, server, capsys)[2] == "", "scripts (no terminal) get no remarks"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run(argv, server, capsys)
    assert code == 0 and len(out.splitlines()) == 2
    assert err == "more jobs: pi-jobs list --status complete --limit 1 --cursor c2\n"


def test_status_prints_fields_or_json(capsys: pytest.CaptureFixture[str]) -> None:
    body = status("in_progress", progress=0.5, eta_seconds=3.0)
    code, out, _ = run(["status", JOB], lambda _: httpx.Response(200, json=body), capsys)
    assert code == 0
    assert "status:           in_progress" in out.splitlines()
    assert "progress:         0.5" in out.splitlines()
    assert (
        json.loads(
            run(["status", JOB, "--json"], lambda _: httpx.Response(200, json=body), capsys)[1]
        )
        == body
    )


# --- SSE and waiting -------------------------------------------------------------------------


def test_parse_sse_events_comments_multiline_and_crlf() -> None:
    lines = [
        ": keep-alive",
        "event: status",
        'data: {"a":',
        "data:1}",
        "id: 7",
        "",
        "",
        "retry: 100\r\n",
        "data: plain\r\n",
        "\r\n",
        "event: status",
        "data: unfinished",
    ]
    assert list(parse_sse(lines)) == [
        SseEvent("status", '{"a":\n1}', "7"),
        SseEvent("message", "plain", "7"),
    ]


def test_wait_follows_events_to_completion(capsys: pytest.CaptureFixture[str]) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"success": True, "job_id": JOB})
        assert request.url.path == f"/pi_job/{JOB}/events", "no polling needed"
        stream = sse(status("queued"), status("in_progress", progress=0.5), status("complete"))
        return httpx.Response(200, content=stream, headers={"content-type": "text/event-stream"})

    code, out, _ = run(["submit", "12", "--wait", "--json"], server, capsys)
    assert code == 0
    assert json.loads(out)["status"] == "complete"


@pytest.mark.parametrize("events_answer", ["missing", "broken", "cut short", "garbled"])
def test_wait_falls_back_to_polling(events_answer: str) -> None:
    polls = iter([status("in_progress", progress=0.9), status("complete")])

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            if events_answer == "missing":
                return error(404, "no such endpoint")
            if events_answer == "broken":
                raise httpx.RemoteProtocolError("peer closed connection", request=request)
            if events_answer == "garbled":
                return httpx.Response(200, content=b"event: status\ndata: {oops\n\n")
            return httpx.Response(200, content=sse(status("queued")))
        return httpx.Response(200, json=next(polls))

    seen: list[str] = []
    with PiJobsApi("http://pi.test", httpx.MockTransport(server)) as api:
        final = api.wait(JOB, lambda s: seen.append(s["status"]))
    assert final["status"] == "complete"
    assert seen[-2:] == ["in_progress", "complete"]


def test_polling_rides_out_a_short_outage_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(0, 1000, 10))
    fake_time = SimpleNamespace(sleep=lambda _: None, monotonic=lambda: float(next(clock)))
    monkeypatch.setattr(client.api, "time", fake_time)
    answers = iter(
        [error(503, "down"), error(503, "down"), httpx.Response(200, json=status("complete"))]
    )
    with PiJobsApi("http://pi.test", httpx.MockTransport(lambda _: next(answers))) as api:
        assert api.poll(JOB, lambda _: None)["status"] == "complete"
    down = httpx.MockTransport(lambda _: error(503, "down"))
    with PiJobsApi("http://pi.test", down) as api, pytest.raises(CliError) as failure:
        api.poll(JOB, lambda _: None)
    assert failure.value.exit_code == 5


@pytest.mark.parametrize("final", ["failed", "cancelled"])
def test_a_job_that_does_not_complete_exits_1(
    final: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"success": True, "job_id": JOB})
        if request.url.path.startswith("/download"):
            raise AssertionError("nothing to download")
        return httpx.Response(200, content=sse(status(final, error="out of memory")))

    code, out, err = run(["submit", "12", "--download", str(tmp_path)], server, capsys)
    assert code == 1
    assert out == JOB + "\n"
    assert err == f"pi-jobs: job {JOB} {final}: out of memory\n"
    assert list(tmp_path.iterdir()) == []


# --- downloads -----------------------------------------------------------------------------


def test_download_saves_the_zip_under_the_servers_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["download", JOB], lambda _: download_answer("3.14159"), capsys)
    assert code == 0
    saved = tmp_path / f"digits_of_pi_{JOB}.zip"
    assert out == f"{saved.name}\n"
    assert zipfile.ZipFile(saved).read(f"digits_of_pi_{JOB}.txt") == b"3.14159"
    assert [p.name for p in tmp_path.iterdir()] == [saved.name], "no temporary file is left"


def test_download_to_a_directory_or_a_file_with_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        ["download", JOB, "-o", str(tmp_path), "--json"], lambda _: download_answer("3.1"), capsys
    )
    assert code == 0
    answer = json.loads(out)
    assert answer["path"] == str(tmp_path / f"digits_of_pi_{JOB}.zip")
    assert answer["sha256"] == hashlib.sha256(b"3.1").hexdigest()
    target = tmp_path / "mine.zip"
    assert run(["download", JOB, "-o", str(target)], lambda _: download_answer("3.1"), capsys)[
        :2
    ] == (
        0,
        f"{target}\n",
    )


def test_a_corrupt_download_exits_7_and_leaves_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "pi.zip"
    target.write_bytes(b"an older file stays as it was")
    answer = download_answer("3.14159", sha256="0" * 64)
    code, out, err = run(["download", JOB, "-o", str(target)], lambda _: answer, capsys)
    assert (code, out) == (EXIT_BAD_DOWNLOAD, "")
    assert err.startswith("pi-jobs: the download is corrupt: ") and err.count("\n") == 1
    assert target.read_bytes() == b"an older file stays as it was"
    assert [p.name for p in tmp_path.iterdir()] == ["pi.zip"]

    not_a_zip = httpx.Response(200, content=b"<html>")
    assert run(["download", JOB, "-o", str(target)], lambda _: not_a_zip, capsys)[0] == 7


def test_downloading_an_unfinished_job_exits_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        ["download", JOB, "-o", str(tmp_path)], lambda _: error(404, "job is not complete"), capsys
    )
    assert (code, err) == (3, "pi-jobs: job is not complete\n")
    assert list(tmp_path.iterdir()) == []


def test_filenames_from_content_disposition_stay_plain_names(tmp_path: Path) -> None:
    def named(header: str) -> str:
        return filename_from(httpx.Response(200, headers={"content-disposition": header}), JOB)

    assert named('attachment; filename="a.zip"') == "a.zip"
    assert named('attachment; filename="../../etc/passwd"') == "passwd"
    assert named('attachment; filename="..\\x.zip"') == "x.zip"
    assert named('attachment; filename=".hidden"') == f"digits_of_pi_{JOB}.zip"
    assert named("attachment") == f"digits_of_pi_{JOB}.zip"
    assert destination(None, "a.zip") == Path("a.zip")
    assert destination(tmp_path, "a.zip") == tmp_path / "a.zip"
    assert destination(tmp_path / "b.zip", "a.zip") == tmp_path / "b.zip"


def test_format_eta() -> None:
    assert [format_eta(s) for s in (None, -1, 4.4, 61, 3725)] == [
        "",
        "",
        "ETA 4 s",
        "ETA 1 min 01 s",
        "ETA 1 h 02 min",
    ]
