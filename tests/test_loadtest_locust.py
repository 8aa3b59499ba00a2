"""`python -m loadtest.run_locust`: locust headless (always a subprocess: importing locust would
monkey-patch this process) against a local stack it starts and stops."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.loadtest_helpers import clean_env, recorded_processes, run_module, state_dir

__all__ = ["state_dir"]

QUICK = {"WORKER_BENCHMARK_MIN_SECONDS": "0.05", "WORKER_BENCHMARK_MAX_SECONDS": "0.2"}


def test_locust_run_writes_reports_and_passes_its_gates(tmp_path: Path, state_dir: Path) -> None:
    """A 10-second ramp run enqueues jobs, measures each to completion, writes the CSV files and
    the HTML report, stops the stack and exits 0 when every gate holds."""
    out = tmp_path / "out"
    run = run_module(
        "loadtest.run_locust",
        *("--run-time", "10s", "--users", "4", "--spawn-rate", "4", "--shape", "ramp"),
        *("--out", str(out), "--slo-p95-e2e-ms", "30000", "--slo-p95-enqueue-ms", "5000"),
        env=clean_env(state_dir, **QUICK),
        timeout=150,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "SLO gates passed" in run.stderr
    with (out / "run_stats.csv").open() as f:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}
    e2e, enqueue = rows[("e2e", "loadtest")], rows[("enqueue", "loadtest")]
    assert int(e2e["Request Count"]) > 0
    assert int(e2e["Failure Count"]) == 0
    assert int(enqueue["Request Count"]) >= int(e2e["Request Count"])
    for name in ("run_stats_history.csv", "run_failures.csv", "run_exceptions.csv"):
        assert (out / name).is_file()
    assert "<html" in (out / "report.html").read_text().lower()
    assert recorded_processes(state_dir) == []


def test_locust_run_with_an_impossible_gate_fails(tmp_path: Path, state_dir: Path) -> None:
    """A p95 end-to-end gate of 1 ms cannot hold when every job sleeps at least 50 ms, so the spike
    run exits 1 and logs the missed gate."""
    run = run_module(
        "loadtest.run_locust",
        *("--run-time", "5s", "--users", "5", "--shape", "spike", "--out", str(tmp_path / "out")),
        *("--slo-p95-e2e-ms", "1"),
        env=clean_env(state_dir, **QUICK),
        timeout=150,
    )
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert "SLO missed: p95 end-to-end latency" in run.stderr
    assert recorded_processes(state_dir) == []
