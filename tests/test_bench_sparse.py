"""`just bench-sparse` in a bounded form: it measures a real worker and prints every figure."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_sparse_benchmark_prints_idle_and_per_job_figures() -> None:
    """A tiny run prints a row per figure with one finite, non-negative value per round, and a
    positive CPU cost per job (a job is never free)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.sparse",
            *("--jobs", "4", "--min", "0.2", "--max", "0.6", "--idle-seconds", "1.5"),
            *("--rounds", "2"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = {
        line.split("|")[1].strip(): [float(c) for c in line.strip().strip("|").split("|")[1:]]
        for line in done.stdout.splitlines()
        if line.startswith("| ") and not line.startswith(("| figure", "| ---"))
    }
    assert list(rows) == [
        "idle: CPU ms per minute",
        "idle: context switches per minute",
        "4 jobs of 0.2-0.6 s: CPU ms per job",
        "4 jobs of 0.2-0.6 s: context switches per job",
    ]
    for values in rows.values():
        assert len(values) == 3  # two rounds and the median
        assert all(math.isfinite(v) and v >= 0 for v in values)
    assert rows["4 jobs of 0.2-0.6 s: CPU ms per job"][2] > 0
