"""workflow_worker.testing as an application uses it: a small project (tests/userproject) with
its own conftest.py enabling the pytest plugin, run by pytest in a fresh process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

PROJECT = Path(__file__).parent / "userproject"


def test_a_users_project_tests_its_workflows_eagerly_and_on_a_real_worker(
    tmp_path: Path,
) -> None:
    """The project's five tests pass: eager runs of async and sync workflows with a lifespan's
    state, progress kept in memory and exceptions raised as they are; and a worker plus clients
    on the plugin's embedded server running the project's `Workflows` registry."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "REDIS_"))}
    env["PYTHONPATH"] = f"{project}{os.pathsep}{ROOT}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-o",
            "asyncio_mode=auto",
            "--rootdir",
            str(project),
            str(project),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout
