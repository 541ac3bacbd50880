"""Running pi-jobs on this machine (make run, the local broker and PostgreSQL) and the deploy
files for containers and Kubernetes."""

from pathlib import Path

# The checkout: where var/ (the default data directory) and the Makefile are.
REPO_ROOT = Path(__file__).resolve().parents[1]
