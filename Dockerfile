# syntax=docker/dockerfile:1
# One image for the four services; the command picks one:
#   docker run IMAGE python -m services.calculator   (api, calculator, projector or downloader)
# Without a command it runs the API. See deploy/README.md for compose and Kubernetes.

# --- builder: the locked dependencies, hash-checked, in a venv --------------------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /build
COPY requirements.lock pyproject.toml ./

# Every wheel is checked against its hash in the lock (gmpy2 and the other native packages ship
# manylinux wheels, so no compiler is needed).
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes -r requirements.lock

# The lock also pins the dev tools (pytest, ruff, mypy, testcontainers, ...). Keep only the
# closure of [project].dependencies in pyproject.toml and uninstall the rest.
RUN /opt/venv/bin/python - <<'EOF'
import importlib.metadata as md
import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement


def key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


with open("pyproject.toml", "rb") as f:
    roots = tomllib.load(f)["project"]["dependencies"]
todo = [r for r in map(Requirement, roots) if r.marker is None or r.marker.evaluate({"extra": ""})]
seen: set[tuple[str, str]] = set()
while todo:
    req = todo.pop()
    for extra in ("", *sorted(req.extras)):
        if (key(req.name), extra) in seen:
            continue
        seen.add((key(req.name), extra))
        for spec in md.requires(req.name) or []:  # PackageNotFoundError: the lock lacks it
            dep = Requirement(spec)
            if dep.marker is None or dep.marker.evaluate({"extra": extra}):
                todo.append(dep)
keep = {name for name, _ in seen} | {"pip"}
drop = sorted({key(d.metadata["Name"]) for d in md.distributions()} - keep)
print("runtime:", " ".join(sorted(keep)))
print("dropped:", " ".join(drop))
if drop:
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", *drop], check=True)
EOF

# --- runtime: the venv and the source, run as an unprivileged user ----------------------------
FROM python:3.11-slim

# The code runs from /app (PYTHONPATH) rather than being pip-installed: an install would need a
# build backend (setuptools) that the lock does not pin, so everything in the image is
# hash-checked. Listening on 0.0.0.0 is what a container needs; the view defaults to /data.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PI_JOBS_HOST=0.0.0.0 \
    PI_JOBS_DOWNLOADER_HOST=0.0.0.0 \
    PI_JOBS_VIEW_DB=/data/view.sqlite3

RUN groupadd --system --gid 10001 pijobs \
 && useradd --system --uid 10001 --gid pijobs --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin pijobs \
 && mkdir /data \
 && chown pijobs:pijobs /data

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY services/ services/
RUN python -m compileall -q services

USER 10001:10001
EXPOSE 3000 3002
CMD ["python", "-m", "services.api"]
