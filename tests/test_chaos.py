"""The bounded chaos run: kills, rolling SIGTERMs, SIGSTOPs past the lease and Redis restarts
under load lose no job, and every job that ran twice is recorded and explained by a fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import Config, run_chaos

LEASE = 2.0


@pytest.mark.chaos
@pytest.mark.slow
def test_chaos_loses_nothing_and_explains_every_duplicate(tmp_path: Path) -> None:
    """Under about 30 s of faults every enqueued job completes or is dead-lettered, nothing is
    left in flight, and each double execution is visible and attributed to a fault."""
    report = run_chaos(Config(seconds=30, lease=LEASE, action_every=3.4, seed=7), tmp_path)
    print("\n" + report.table())
    assert report.jobs > 500
    assert report.lost == []
    assert report.leftovers == {"queue": 0, "processing": 0, "delayed": 0}
    assert report.completed == report.jobs
    assert report.unexplained == []
    # A SIGTERMed worker exits within its shutdown timeout plus the requeue bound.
    assert report.slow_drains == []
    # Every completion the workers flagged as a duplicate is also in the execution records.
    assert report.duplicates_metric <= report.duplicates
    # Every fault happened at least twice (so the run exercised what it claims to).
    assert min(report.kills, report.terms, report.stops, report.restarts) >= 2
    # A dead worker's jobs start elsewhere within the lease plus one reaper interval (lease/3),
    # with slack for a loaded 2-core machine.
    assert report.worst_kill_redelivery < 1.34 * LEASE + 2.0
