"""`just bench-steps` in a bounded form: it measures real workers and prints every figure."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rows(text: str) -> dict[str, list[str]]:
    return {
        line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")[1:]]
        for line in text.splitlines()
        if line.startswith("| ")
        and "---" not in line
        and not line.startswith(("| step cost", "| rolling"))
    }


def test_step_benchmark_prints_step_cost_and_rolling_deploy_figures() -> None:
    """A tiny run prints a step's CPU and round trips (about one script call per step plus one
    read per attempt) and a rolling deploy with and without steps where every job finishes and,
    with steps, no work runs twice."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.steps",
            *("--cost-jobs", "30", "--cost-steps", "5", "--fleet", "2", "--concurrency", "2"),
            *("--min", "2", "--max", "3", "--drain-timeouts", "300"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = _rows(done.stdout)
    cpu = float(rows["worker CPU per step, above the same calls without steps"][0].split()[0])
    assert math.isfinite(cpu)
    assert cpu >= 0
    trips = float(rows["Redis round trips per step"][0])
    assert 1.0 <= trips <= 1.5, f"{trips} round trips per step"
    plain, steps = rows["without steps"], rows["with steps"]
    assert plain[-1] == "0", "every job finished without steps"
    assert steps[-1] == "0", "every job finished with steps"
    assert steps[1].startswith("0.0 s"), "with steps, no work ran twice"
