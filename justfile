# workflow-worker: the menu. `./dev <recipe>` runs these inside .venv; `just --list` shows them.
set shell := ["bash", "-euo", "pipefail", "-c"]

export PATH := justfile_directory() + "/.venv/bin:" + justfile_directory() + "/.tools/bin:" + env("PATH")

default:
    @just --list

# Start an embedded Redis (unless REDIS_URL is set), 2 workers in benchmark mode, push 200 jobs, watch them finish
[group('demo')]
demo jobs="200" workers="2":
    python -m worker.demo --jobs {{ jobs }} --workers {{ workers }}

# Install the engines the tests drive (helm, prometheus, promtool, checkov) into .tools/
[group('dev')]
tools:
    scripts/install-tools.sh

# Lint, type-check and run the whole test suite (what CI runs)
[group('dev')]
test *args: tools lint typecheck
    python -m pytest {{ args }}

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
