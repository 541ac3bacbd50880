"""A calculator killed with -9 mid-computation: the job, delivered again, resumes from the
checkpoints its engine saved instead of from zero, and they are gone once it completes."""

import hashlib
import json
import re
from collections.abc import Iterator

import httpx
import pytest

from deploy.local_stack import LocalStack
from services.calculator.engine import pi_decimals
from tests.e2e.helpers import download_text, engine_processes, submit, wait_complete
from tests.stacks import start_stack, stop_stack
from tests.support import wait_until

NUM = 3_000_000
LOADED = re.compile(r"split (parent|worker): .* computed (\d+), loaded (\d+)")


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # Checkpoints as often as the engine finishes a node: a job of a second or two saves some.
    env = {"PI_JOBS_CHECKPOINT_INTERVAL_SECONDS": "0.02"}
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("resume"), extra_env=env)
    yield running
    stop_stack(running, show_logs=True)


def engine_notes(stack: LocalStack) -> list[str]:
    notes = []
    for line in stack.log_path("calculator").read_text(errors="replace").splitlines():
        if line.startswith("{") and "engine_note" in line:
            notes.append(str(json.loads(line)["engine_note"]))
    return notes


def test_a_job_rerun_after_a_calculator_kill_resumes_from_its_checkpoints(
    stack: LocalStack,
) -> None:
    checkpoints = stack.data_dir / "checkpoints"
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        job_id = submit(client, NUM)
        wait_until(lambda: engine_processes(stack), 120, "the digit engine to start")
        # Nodes of the splitting ("<a>-<b>.node"; sqrt.node is the worker's square root).
        wait_until(lambda: any(checkpoints.glob("pi-*/*-*.node")), 120, "checkpoints")
        stack.kill("calculator")
        # Nodes of the splitting; or, had it just ended, the series state it ended with.
        nodes_saved = any(checkpoints.glob("pi-*/*-*.node"))
        notes_before = len(engine_notes(stack))

        stack.start("calculator")
        wait_complete(client, job_id, timeout=300)
        text = download_text(client, job_id)

    expected = "3." + pi_decimals(NUM)
    assert hashlib.sha256(text.encode()).digest() == hashlib.sha256(expected.encode()).digest()
    rerun_notes = engine_notes(stack)[notes_before:]
    resumed = [LOADED.search(note) for note in rerun_notes]
    counts = [(int(m.group(2)), int(m.group(3))) for m in resumed if m is not None]
    after_the_splitting = any(note.startswith("resumed after") for note in rerun_notes)
    assert counts or after_the_splitting, "the rerun logged no splitting"
    if nodes_saved:
        assert sum(loaded for _, loaded in counts) > 0, counts
    else:
        assert sum(computed for computed, _ in counts) == 0, counts
    # The job ended: its computation's checkpoints are gone, the series state stays.
    assert not list(checkpoints.glob("pi-*"))
    assert [path.name for path in checkpoints.glob("series-*")]
