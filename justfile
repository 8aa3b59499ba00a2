# workflow-worker: the menu. `./dev <recipe>` runs these inside .venv; `just --list` shows them.
set shell := ["bash", "-euo", "pipefail", "-c"]

export PATH := justfile_directory() + "/.venv/bin:" + justfile_directory() + "/.tools/bin:" + env("PATH")

default:
    @just --list

# Start an embedded Redis (unless REDIS_URL is set), 2 workers in benchmark mode, push 200 jobs, watch them finish
[group('demo')]
demo jobs="200" workers="2":
    python -m workflow_worker.local.demo --jobs {{ jobs }} --workers {{ workers }}

# Install the engines the tests drive (helm, prometheus, promtool, checkov) into .tools/, and the peers of bench-compare into .venv-peers/
[group('dev')]
tools:
    #!/usr/bin/env bash
    set -euo pipefail
    # Two independent installs (engines into .tools/, peer venvs into .venv-peers/), side by side.
    scripts/install-peers.sh & peers=$!
    scripts/install-tools.sh
    wait "$peers"

# Lint, type-check and run the whole test suite (what CI runs); the image test runs last, alone
[group('dev')]
test *args: tools lint typecheck
    python -m pytest -n 4 --dist worksteal -m "not image" {{ args }}
    {{ if args == "" { "python -m pytest -p no:cacheprovider -m image tests/test_image.py" } else { "true" } }}

# Build the Dockerfile with podman (no Docker engine) and run the image locked down against a local Redis (about 2 min)
[group('dev')]
image-test *args: tools
    python -m pytest -p no:cacheprovider -m image tests/test_image.py {{ args }}

# ruff lint and format check
[group('dev')]
lint:
    ruff check .
    ruff format --check .

# mypy --strict over the package, tests and tools
[group('dev')]
typecheck:
    mypy

# Format the code
[group('dev')]
fmt:
    ruff format .
    ruff check --fix .

# Benchmark one worker process against the minimal BRPOP loop (prints a table)
[group('bench')]
bench *args:
    python -m bench.run {{ args }}

# One worker with long jobs finishing seconds apart: idle CPU and wake-ups, CPU per lone job (about 2 min)
[group('bench')]
bench-sparse *args:
    python -m bench.sparse {{ args }}

# Durable steps: CPU and Redis round trips per step, and a rolling deploy of five-step workflows with and without steps (about 6 min)
[group('bench')]
bench-steps *args:
    python -m bench.steps {{ args }}

# Side by side with Celery (prefork, threads), arq, SAQ and taskiq on one Redis (long; writes bench/results/)
[group('bench')]
bench-compare *args:
    python -m bench.compare {{ args }}

# Regenerate the Grafana dashboard JSON and the chart's copy of the alert rules (--check: fail if stale)
[group('dev')]
dashboard *args:
    python -m dashboards.generate {{ args }}

# Regenerate the chart README from the values.yaml comments
[group('dev')]
helm-docs:
    python scripts/helm_docs.py

# Regenerate docs/api.md from the package's docstrings (--check: fail if stale)
[group('dev')]
api-docs *args:
    python scripts/api_docs.py {{ args }}

# Regenerate the Terraform module READMEs' input and output tables
[group('dev')]
tf-docs:
    python -m tests.terraform_helpers docs

# Apply one environment (hmg|staging|production)
[group('infra'), confirm("Apply terraform to this workspace?")]
tf-apply env:
    terraform -chdir=terraform workspace select -or-create {{ env }}
    terraform -chdir=terraform apply -var-file=workspaces/{{ env }}.tfvars

# Turn on benchmark mode and push N synthetic jobs (TARGET=local by default, or TARGET=k8s)
[group('load')]
load-test-start jobs="200":
    python -m loadtest.ctl start {{ jobs }}

# Queue depth, active jobs and pod count, refreshed in place on a terminal (Ctrl-C to leave); one frame when piped or with --once
[group('load')]
load-test-status *args:
    python -m loadtest.ctl status {{ args }}

# Drain the queue and restore normal mode
[group('load')]
load-test-stop:
    python -m loadtest.ctl stop

# locust against the local stack for a bounded time (SLO gates set the exit code)
[group('load')]
load-test-locust *args:
    python -m loadtest.run_locust {{ args }}

# The fault harness, long form: every fault of docs/guarantees.md under load, then every job's history checked (10 minutes)
[group('reliability')]
faults *args:
    python -m bench.faults {{ args }}

# 30-minute soak at a steady rate, sampling RSS and open file descriptors; a leak fails it
[group('reliability')]
soak *args:
    python -m bench.soak {{ args }}
