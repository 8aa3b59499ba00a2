"""The README's first command: the demo runs end to end and stops what it started."""

from __future__ import annotations

import os
import subprocess
import sys

from workflow_worker.local.devstack import worker_environment


def test_demo_runs_jobs_to_completion_on_an_embedded_server() -> None:
    """The demo module starts its own server and workers, finishes all jobs, exits 0."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow_worker.local.demo",
            "--jobs",
            "30",
            "--min-seconds",
            "0.05",
            "--max-seconds",
            "0.2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "done=30/30" in proc.stdout
    assert "30 jobs in" in proc.stdout
    assert "stopped 2 workers (exit codes [0, 0])" in proc.stdout


def test_demo_uses_redis_url_when_set(redis_url: str) -> None:
    """With REDIS_URL set the demo uses that server instead of starting one."""
    env = worker_environment(redis_url)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow_worker.local.demo",
            "--jobs",
            "10",
            "--workers",
            "1",
            "--min-seconds",
            "0.05",
            "--max-seconds",
            "0.1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert redis_url.split("//")[1].split("/")[0] in proc.stdout
    assert "done=10/10" in proc.stdout
