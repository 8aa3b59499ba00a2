"""A fan-out of 1,000 children under the fault harness, bounded: the group's callback is
enqueued exactly once, with all 1,000 outcomes in order, whatever the faults did meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults.harness import FAULTS, Config, run_faults


@pytest.mark.faults
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_fan_out_of_1000_children_joins_exactly_once_under_every_fault(tmp_path: Path) -> None:
    """1,000 group members run while every fault kind is injected (kills, drains, Redis
    restarts and failovers, lost and late replies, partitions, a full Redis): no member is
    lost, the callback runs with 1,000 outcomes in member order, and every extra run of any job
    (the callback included) is explained by a kill or flagged by its worker, so the callback
    was enqueued once."""
    cfg = Config(seconds=30, every=2.0, seed=5, rate=5.0, fanout=1000)
    report = run_faults(cfg, tmp_path)
    print("\n" + report.table())
    verdict = report.verdict
    assert set(report.faults) == set(FAULTS)
    assert verdict.jobs > 1000
    assert verdict.fanout_wrong == []
    assert verdict.lost == []
    assert verdict.uncounted == []
    assert verdict.stuck == {"queue": 0, "processing": 0, "delayed": 0}
    assert report.ok()
