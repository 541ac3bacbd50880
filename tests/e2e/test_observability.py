"""Every service: /healthz, /readyz, Prometheus metrics named pi_jobs_*, and JSON log lines that
name the job they are about."""

import json
import re
from functools import partial
from pathlib import Path

import httpx

from deploy.local_stack import SERVICES, LocalStack
from tests.e2e.helpers import download_text, submit, wait_complete
from tests.support import wait_until

README = Path(__file__).parents[2] / "README.md"


def _ready(url: str) -> bool:
    return httpx.get(f"{url}/readyz").status_code == 200


def _has_lag(url: str) -> bool:
    return "pi_jobs_consumer_lag{" in httpx.get(f"{url}/metrics").text


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (the sum if several match)."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            head, value = line.rsplit(" ", 1)
            if head.split("{")[0] == name:
                total, found = total + float(value), True
    assert found, f"no {name} {labels} in metrics"
    return total


def test_health_readiness_and_metrics_on_every_service(
    client: httpx.Client, stack: LocalStack
) -> None:
    job_id = submit(client, 777_777)  # computes: nothing this size is stored yet
    wait_complete(client, job_id)
    download_text(client, job_id)
    ops = {
        "api": stack.url,
        "downloader": f"http://127.0.0.1:{stack.downloader_port}",
        "calculator": f"http://127.0.0.1:{stack.calculator_ops_port}",
        "projector": f"http://127.0.0.1:{stack.projector_ops_port}",
    }
    for service, url in ops.items():
        assert httpx.get(f"{url}/healthz").json() == {"success": True}, service
        wait_until(partial(_ready, url), 60, f"{service} ready")
        response = httpx.get(f"{url}/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain"), service

    api = httpx.get(f"{ops['api']}/metrics").text
    assert metric(api, "pi_jobs_jobs", state="complete") >= 1
    assert metric(api, "pi_jobs_stored_digits") >= 777_777
    assert metric(api, "pi_jobs_http_requests_total", route="/pi_job/{job_id}", status="200") >= 1
    calculator = httpx.get(f"{ops['calculator']}/metrics").text
    assert metric(calculator, "pi_jobs_digits_computed_total") >= 800_000
    # Lag is sampled every few seconds once partitions are assigned.
    wait_until(partial(_has_lag, ops["calculator"]), 30, "the calculator's consumer lag")
    wait_until(partial(_has_lag, ops["projector"]), 30, "the projector's consumer lag")
    projector = httpx.get(f"{ops['projector']}/metrics").text
    assert metric(projector, "pi_jobs_job_duration_seconds_count", size="1e6") >= 1
    downloader = httpx.get(f"{ops['downloader']}/metrics").text
    assert metric(downloader, "pi_jobs_http_requests_total", status="200") >= 1


def test_each_service_exports_its_own_metrics_as_the_readme_says(
    client: httpx.Client, stack: LocalStack
) -> None:
    job_id = submit(client, 4_444)
    wait_complete(client, job_id)
    download_text(client, job_id)
    ports = {
        "api": stack.api_port,
        "downloader": stack.downloader_port,
        "calculator": stack.calculator_ops_port,
        "projector": stack.projector_ops_port,
    }
    wait_until(partial(_has_lag, f"http://127.0.0.1:{ports['projector']}"), 30, "lag sampled")
    documented = documented_metrics()
    for service, port in ports.items():
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert metric_families(text) == documented[service], service


def documented_metrics() -> dict[str, set[str]]:
    """The README's table of the metrics each service exports (labels left out)."""
    table = README.read_text().split("| service | metrics |", 1)[1].split("\n\n", 1)[0]
    names = {}
    for row in table.strip().splitlines()[1:]:  # after the |---|---| line
        service, metrics = row.strip().strip("|").split("|")
        found = re.findall(r"`(pi_jobs_[a-z_]+)", metrics)
        names[service.split()[0]] = set(found)
    every = names.pop("every")
    return {service: found | every for service, found in names.items()}


def metric_families(text: str) -> set[str]:
    """The pi_jobs_* metrics in Prometheus' text format (not the client's *_created twins)."""
    typed = (line.split()[2] for line in text.splitlines() if line.startswith("# TYPE pi_jobs_"))
    return {name for name in typed if not name.endswith("_created")}


def test_log_lines_are_json_and_name_their_job(client: httpx.Client, stack: LocalStack) -> None:
    job_id = submit(client, 31)
    wait_complete(client, job_id)
    about_the_job = []
    for service in SERVICES:
        for line in stack.log_path(service).read_text().splitlines():
            entry = json.loads(line)  # every line is one JSON object
            assert {"time", "level", "service", "message"} <= entry.keys(), entry
            if job_id in line:
                about_the_job.append(entry)
    assert {e["service"] for e in about_the_job} >= {"api", "calculator", "projector"}
    # One job's line says job_id; a burst's line (jobs served together) lists job_ids.
    assert all(
        e.get("job_id") == job_id or job_id in e.get("job_ids", []) for e in about_the_job
    ), about_the_job
