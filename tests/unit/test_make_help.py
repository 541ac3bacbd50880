"""`make` alone lists every target, one line each."""

import re
import shutil
import subprocess

import pytest

from deploy.kafka.local_broker import REPO_ROOT

MAKEFILE = (REPO_ROOT / "Makefile").read_text()


def _phony_targets() -> set[str]:
    declared = re.search(r"^\.PHONY:(.*?)(?<!\\)\n", MAKEFILE, re.MULTILINE | re.DOTALL)
    assert declared is not None
    return set(declared.group(1).replace("\\\n", " ").split())


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_alone_prints_every_target_on_a_line_of_its_own() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines()[1:]}
    assert listed == _phony_targets()
    assert all(len(line.split(maxsplit=1)) == 2 for line in done.stdout.splitlines()[1:])
    assert {"help", "run", "status", "stop", "logs"} <= listed
