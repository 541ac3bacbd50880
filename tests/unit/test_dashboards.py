"""The Grafana dashboard and the Prometheus scrape configuration against the code: every metric
they name is registered by our services (read from prometheus_client's registry once every module
under services/ is imported), with the labels they use; every scrape job is a service, at the port
its settings give. promtool, when installed, checks the configuration and every expression.
"""

import functools
import importlib
import json
import pkgutil
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from pydantic_settings import BaseSettings

import services
from services.shared.settings import (
    ApiSettings,
    CalculatorSettings,
    DownloaderSettings,
    ProjectorSettings,
)

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
SCRAPE_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
SERVICES = sorted(p.parent.name for p in (REPO / "services").glob("*/__main__.py"))

# Where each service serves /metrics.
METRICS_PORTS: dict[str, tuple[type[BaseSettings], str]] = {
    "api": (ApiSettings, "pi_jobs_port"),
    "downloader": (DownloaderSettings, "pi_jobs_downloader_port"),
    "calculator": (CalculatorSettings, "pi_jobs_calculator_ops_port"),
    "projector": (ProjectorSettings, "pi_jobs_projector_ops_port"),
}
# Series Prometheus makes itself for every target, and labels it adds or histograms carry.
PROMETHEUS_SERIES = {"up": {"job", "instance"}}
PROMETHEUS_LABELS = {"job", "instance", "le"}
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
PROMQL_WORDS |= {"and", "or", "unless", "inf", "nan"}


@functools.cache
def registered_series() -> dict[str, frozenset[str]]:
    """Every series name our code registers (a counter's _total, a histogram's _bucket, ...) and
    the label names it has."""
    modules = [
        importlib.import_module(found.name)
        for found in pkgutil.walk_packages(services.__path__, "services.")
    ]
    labels = {
        next(iter(metric.describe())).name: frozenset(metric._labelnames)  # no public accessor
        for module in modules
        for metric in vars(module).values()
        if isinstance(metric, MetricWrapperBase)
    }
    return {
        family.name + suffix: labels[family.name] | (PROMETHEUS_LABELS if suffix else set())
        for family in REGISTRY.collect()
        if family.name in labels
        for suffix in SERIES_SUFFIXES[family.type]
    }


def known_series() -> dict[str, frozenset[str]]:
    return {**registered_series(), **{k: frozenset(v) for k, v in PROMETHEUS_SERIES.items()}}


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(PromQL expression, legend) of every panel and of every query variable."""
    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield target["expr"], target.get("legendFormat", "")
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] == "query":
            query = variable["query"]
            yield query["query"] if isinstance(query, dict) else query, ""


def metrics_and_labels(expr: str, legend: str) -> tuple[set[str], set[str]]:
    """The metric names an expression selects and the label names it (or its legend) uses."""
    label_values = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", expr)
    if label_values:
        return {label_values[1]}, {label_values[2]}
    grouped = re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr)
    matchers = re.findall(r"\{([^}]*)\}", expr)
    labels = {name.strip() for group in grouped for name in group.split(",") if name.strip()}
    labels |= {name for m in matchers for name in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", m)}
    labels |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    rest = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]|\$\w+', " ", expr)
    rest = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", rest)
    names = set(re.findall(r"\b([a-zA-Z_:][\w:]*)\b(?!\s*\()", rest)) - PROMQL_WORDS
    return names, labels


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_metric_and_label_a_dashboard_uses_is_registered(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and "id" not in dashboard, "provisioned dashboards carry a uid only"
    found = list(queries(dashboard))
    assert len(found) >= 10
    used: set[str] = set()
    for expr, legend in found:
        names, labels = metrics_and_labels(expr, legend)
        assert names, f"no metric in {expr!r}"
        unknown = names - known_series().keys()
        assert not unknown, f"{expr!r}: no such metric in our code: {sorted(unknown)}"
        have = set().union(*(known_series()[name] for name in names))
        assert labels <= have, f"{expr!r}: labels {sorted(labels - have)} are on none of {names}"
        used |= names
    # The issue asked for these: jobs by state, durations by size, lag, requests and latency.
    for wanted in ("pi_jobs_jobs", "pi_jobs_job_duration_seconds_bucket", "pi_jobs_consumer_lag"):
        assert wanted in used
    assert {"pi_jobs_http_requests_total", "pi_jobs_http_request_duration_seconds_bucket"} <= used


def test_the_metric_names_come_from_the_code() -> None:
    # A guard on the guard: the registry read above does see our metrics and their labels.
    series = registered_series()
    assert series["pi_jobs_http_requests_total"] >= {"service", "route", "status"}
    assert "le" in series["pi_jobs_job_duration_seconds_bucket"]
    assert "pi_jobs_no_such_metric" not in series


def scrape_jobs() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_every_service_is_scraped_at_its_port() -> None:
    assert sorted(METRICS_PORTS) == SERVICES, "a service without a metrics port in this test"
    jobs = scrape_jobs()
    assert sorted(jobs) == SERVICES
    for service, job in jobs.items():
        settings_class, port_field = METRICS_PORTS[service]
        port = settings_class.model_fields[port_field].default
        targets = [t for static in job["static_configs"] for t in static["targets"]]
        assert targets == [f"127.0.0.1:{port}"], f"{service}: {targets}, its port is {port}"
        assert job.get("metrics_path", "/metrics") == "/metrics"


def test_promtool_accepts_the_config_and_every_expression(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    config = subprocess.run([promtool, "check", "config", str(SCRAPE_CONFIG)], capture_output=True)
    assert config.returncode == 0, config.stdout + config.stderr
    # Grafana's variables become what they stand for; label_values is Grafana's, not PromQL.
    expressions = [
        expr.replace("$__rate_interval", "5m").replace("$service", ".*")
        for path in DASHBOARDS
        for expr, _ in queries(json.loads(path.read_text()))
        if not expr.startswith("label_values(")
    ]
    rules = [{"record": f"dashboard_expr_{i}", "expr": expr} for i, expr in enumerate(expressions)]
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
