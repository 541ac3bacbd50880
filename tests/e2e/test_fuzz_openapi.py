"""Fuzzing the running API from its own OpenAPI schema: no input may make it answer 5xx.

schemathesis reads /openapi.json from all services running as real processes and, per operation,
sends the schema's examples, its coverage cases (boundaries, missing and wrong-typed values,
methods the path does not serve) and generated inputs, valid and invalid. Every answer must be
below 500, and every 4xx must carry the error shape {"success": false, "error": "<message>"}.

The stack here runs with PI_JOBS_MAX_NUM=10000, so every job the fuzzer creates is small (the
first computes one chunk of digits, the rest are served from stored digits), and a num above
the maximum is refused up front like any other bad input. The cases are the same on every run
(derandomized, no example database).
"""

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.specs.openapi.schemas import OpenApiSchema

from deploy.local_stack import LocalStack
from tests.stacks import stack_running

FUZZ_MAX_NUM = 10_000
MAX_EXAMPLES = 100  # generated cases per operation, on top of its examples and coverage cases
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"  # services/api/app.py


def num_request_body(max_num: int) -> dict[str, Any]:
    """The body POST /pi_job reads by itself (services/api/submission.py), as OpenAPI."""
    fields = {
        "type": "object",
        "properties": {"num": {"type": "integer", "minimum": 1, "maximum": max_num}},
        "required": ["num"],
    }
    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": fields},
            "multipart/form-data": {"schema": fields},
            "application/json": {"schema": fields},
        },
    }


def declare_what_the_routes_read(document: dict[str, Any]) -> dict[str, Any]:
    """The served schema, plus what POST /pi_job reads but does not declare (yet).

    Without a requestBody the fuzzer would never send a body; without the key's pattern, nearly
    every generated key is refused first and the body behind it never looked at.
    """
    document = copy.deepcopy(document)
    create = document["paths"]["/pi_job"]["post"]
    create.setdefault("requestBody", num_request_body(FUZZ_MAX_NUM))
    for parameter in create.get("parameters", []):
        if parameter["name"].lower() == "idempotency-key":
            parameter["schema"].setdefault("pattern", IDEMPOTENCY_KEY_PATTERN)
    return document


@pytest.fixture(scope="module")
def fuzz_stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    with stack_running(
        kafka_bootstrap,
        tmp_path_factory.mktemp("fuzz-stack"),
        topic_prefix=f"fuzz-{uuid.uuid4().hex[:12]}",
        extra_env={"PI_JOBS_MAX_NUM": str(FUZZ_MAX_NUM)},
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def served_schema(fuzz_stack: LocalStack) -> dict[str, Any]:
    response = httpx.get(f"{fuzz_stack.url}/openapi.json", timeout=60)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture(scope="module")
def api_schema(fuzz_stack: LocalStack, served_schema: dict[str, Any]) -> OpenApiSchema:
    config = schemathesis.Config.from_dict(
        {
            "base-url": fuzz_stack.url,
            "seed": 314159,
            "request-timeout": 60,
            "max-stream-events": 10,  # /pi_job/{id}/events of a real job: read 10 events at most
            "output": {"sanitization": {"enabled": False}},  # show keys in the curl to reproduce
            "generation": {
                "mode": "all",  # valid and invalid inputs
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,  # Hypothesis' derandomize: the same cases on every run
                "database": "none",  # no example database (Hypothesis still caches .hypothesis/)
            },
        }
    )
    return schemathesis.openapi.from_dict(
        declare_what_the_routes_read(served_schema), config=config
    )


def test_the_schema_declares_what_post_pi_job_reads(served_schema: dict[str, Any]) -> None:
    assert declare_what_the_routes_read(served_schema) == served_schema


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32.5's from_fixture() reads and rewrites the test item's `_nodeid`, which
    # pytest 9.2 no longer has (AttributeError): give the item one to read.
    vars(request.node).setdefault("_nodeid", request.node.nodeid)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_no_input_makes_the_api_fail(case: schemathesis.Case[Any]) -> None:
    response = case.call(timeout=60)
    shown = (
        f"{response.status_code} {response.content[:300]!r}\nreproduce: {case.as_curl_command()}"
    )
    assert response.status_code < 500, shown
    if response.status_code >= 400:
        assert response.headers.get("content-type", [""])[0].startswith("application/json"), shown
        if case.method.upper() == "HEAD":
            return  # the headers of the GET, never a body
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"success", "error"}, shown
        assert body["success"] is False, shown
        assert isinstance(body["error"], str) and body["error"].strip(), shown
