# syntax=docker/dockerfile:1
# workflow-worker image: build a wheel in one stage, run it from a virtualenv in a slim, non-root stage.
#
#   docker build -t ghcr.io/example/workflow-worker:0.1.0 .
#   docker build --build-arg EXTRA_REQUIREMENTS="myflows==1.4.0 httpx>=0.27" -t my-worker:1 .
#
# Teams add their own workflows either with EXTRA_REQUIREMENTS (pip specifiers of their packages) or by
# using this image as a base (docs/deploy-helm.md):
#
#   FROM ghcr.io/example/workflow-worker:0.1.0
#   COPY myflows/ /app/myflows/
#   ENV WORKER_WORKFLOWS=myflows.registry:WORKFLOWS

ARG PYTHON_VERSION=3.12
# Base of both stages: a Debian-based image with Python 3.11+ on PATH as `python`, `apt-get`,
# `groupadd` and `useradd`. Production keeps the official slim image; `just image-test` passes a
# local Debian root filesystem instead.
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim

############################
# Builder: compilers allowed
############################
FROM ${BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# Compilers only for dependencies without a wheel for this platform (e.g. an extra requirement);
# none of this reaches the final stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY workflow_worker/ workflow_worker/
# Optional build secrets for pip, never stored in a layer: `pip-conf` (a pip.conf: a private index, a proxy)
# and `pip-ca` (a CA bundle, which that file names as `cert = /run/secrets/pip-ca`), e.g.
#   docker build --secret id=pip-conf,src=pip.conf --secret id=pip-ca,src=ca.crt ...
RUN --mount=type=secret,id=pip-conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-ca \
    pip wheel --no-deps --wheel-dir /wheels . \
    && pip install /wheels/*.whl

# Space-separated pip requirement specifiers installed next to the worker (your workflow packages).
ARG EXTRA_REQUIREMENTS=""
RUN --mount=type=secret,id=pip-conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-ca \
    if [ -n "$EXTRA_REQUIREMENTS" ]; then pip install $EXTRA_REQUIREMENTS; fi

############################
# Runtime: no build tools
############################
FROM ${BASE_IMAGE} AS runtime

LABEL org.opencontainers.image.title="workflow-worker" \
      org.opencontainers.image.description="Reliable Redis-list job worker for asyncio workflows" \
      org.opencontainers.image.source="https://github.com/example/workflow-worker" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app

# A fixed numeric UID/GID, so Kubernetes can verify runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 worker \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin worker

COPY --from=builder /opt/venv /opt/venv

# Workflow code copied by derived images goes here (on PYTHONPATH).
WORKDIR /app

USER 10001:10001

# /metrics, /healthz, /readyz
EXPOSE 8080

# The worker drains on SIGTERM: stops taking jobs, finishes or requeues in-flight ones, then exits.
STOPSIGNAL SIGTERM

ENTRYPOINT ["workflow-worker"]
CMD ["run"]
