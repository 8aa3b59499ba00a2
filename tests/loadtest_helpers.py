"""Helpers for the load-test tests: a clean environment and a guard that stops whatever a
`loadtest` command left running, even when the test failed half-way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest import procs

ROOT = Path(__file__).resolve().parent.parent
PREFIXES = ("WORKER_", "REDIS_", "LOADTEST_", "LOCUST_", "FAKE_KUBECTL_")
NAMES = ("TARGET", "KUBE_CONTEXT", "NAMESPACE", "DEPLOYMENT")


def clean_env(state_dir: Path, **env: str) -> dict[str, str]:
    """This environment without load-test, worker or Redis settings, plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES) and k not in NAMES}
    base.update(
        LOADTEST_STATE_DIR=str(state_dir),
        PYTHONPATH=str(ROOT),
        WORKER_LEASE_SECONDS="3",
        WORKER_METRICS_INTERVAL="0.2",
    )
    base.update(env)
    return base


def run_module(
    module: str, *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def recorded_processes(state_dir: Path) -> list[tuple[int, str]]:
    """(pid, marker) of every process a state file under `state_dir` records."""
    found: list[tuple[int, str]] = []
    for path in state_dir.rglob("state.json"):
        data = json.loads(path.read_text())
        parts = [*data.get("workers", []), *([data["redis"]] if data.get("redis") else [])]
        found += [(int(p["pid"]), str(p["marker"])) for p in parts]
    return found


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A private .loadtest directory; at teardown every process recorded in it is stopped."""
    path = tmp_path / "loadtest-state"
    yield path
    for pid, marker in recorded_processes(path):
        procs.terminate(pid, marker, timeout=10)
