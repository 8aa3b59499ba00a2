"""The bounded soak: a minute of steady mixed load must not grow the workers' memory or their
open file descriptors (`just soak` runs the same for 30 minutes with a tighter RSS bound)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import SoakConfig, run_soak


@pytest.mark.soak
@pytest.mark.slow
def test_one_minute_of_steady_load_leaks_nothing(tmp_path: Path) -> None:
    """Two workers under a steady mix of successes, retries, dead letters and malformed messages
    keep RSS flat over the second half and open no descriptors beyond what the first half used."""
    cfg = SoakConfig(
        seconds=60,
        rate=40,
        interval=1.0,
        # One minute is short for a slope: the bound is looser than the 30-minute run's.
        rss_slope_kib_per_min=2048,
        seed=11,
    )
    report = run_soak(cfg, tmp_path)
    print("\n" + report.table())
    assert report.leaks() == []
    assert report.enqueued > 1500
    assert report.backlog < cfg.rate * 2, "the workers kept up: a steady state, not a pile-up"
    # Every message was handled at least once (retries and dead letters count too).
    assert report.finished >= report.enqueued - cfg.rate * 2
    for series in report.series:
        assert len(series.samples) >= 30
