"""The Prometheus rule file: promtool check and unit tests, labels, annotations, contract names."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.prom_helpers import (
    RULES,
    RULES_TEST,
    contract_metrics,
    load_rules,
    promtool,
    referenced_metrics,
)

REQUIRED_ALERTS = {
    "WorkflowQueueStalled",
    "WorkflowHighFailureRate",
    "WorkflowJobsWaitingTooLong",
    "WorkflowWorkersSaturated",
    "WorkflowNoWorkerScraped",
    "WorkflowJobFailureBudgetBurn",
    "WorkflowQueueWaitBudgetBurn",
    "WorkflowRedisDisconnected",
    "WorkflowWorkersAtMaxReplicas",
    "WorkflowKedaScalerErrors",
}
FLEET_GAUGES = (
    "workflow_jobs_queued",
    "workflow_jobs_inflight",
    "workflow_jobs_delayed",
    "workflow_jobs_dead_letter",
    "workflow_queue_oldest_age_seconds",
)


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in load_rules() if "alert" in rule]


def _alert_cases() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    return [case for test in doc["tests"] for case in test.get("alert_rule_test", [])]


def test_promtool_check_rules_passes() -> None:
    """`promtool check rules` accepts the rule file and counts every rule in it."""
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    """`promtool test rules` passes every firing and not-firing case of the rule unit tests."""
    result = promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("> 0.1\n", "> 0.5\n"),
        ("oldest_age_seconds:max > 600", "oldest_age_seconds:max > 6000"),
        ("increase(workflow_jobs_total[10m])", "increase(workflow_jobs_total[2m])"),
        # The SLO budget, a burn factor, a window, the wait bound.
        ("ratio_rate1h > (14.4 * 0.01)", "ratio_rate1h > (14.4 * 0.02)"),
        ("ratio_rate6h > (6 * 0.01)", "ratio_rate6h > (10 * 0.01)"),
        ('status=~"failure|dead"}[30m]', 'status=~"failure|dead"}[1h]'),
        ('le="60.0"}[5m]', 'le="120.0"}[5m]'),
        # Redis, HPA and KEDA alerts.
        ("(1 - workflow_redis_connected) > 0", "(1 - workflow_redis_connected) > 1"),
        (
            "(kube_horizontalpodautoscaler_spec_max_replicas)",
            "(kube_horizontalpodautoscaler_spec_max_replicas) + 1",
        ),
        (
            '"namespace", "$1", "exported_namespace", "(.+)"',
            '"namespace", "$1", "namespace", "(.+)"',
        ),
        ("[1d]", "[1m]"),
    ],
)
def test_unit_tests_catch_a_changed_threshold(tmp_path: Path, old: str, new: str) -> None:
    """A rule file with a changed threshold or window fails the unit tests, so they have teeth."""
    text = RULES.read_text(encoding="utf-8")
    assert old in text
    (tmp_path / RULES.name).write_text(text.replace(old, new), encoding="utf-8")
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    result = promtool("test", "rules", RULES_TEST.name, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED" in result.stdout + result.stderr


def test_the_ten_alerts_exist() -> None:
    """Stall, failure rate, wait time, saturation and missing-worker alerts, the two SLO burn-rate
    alerts, Redis disconnected, HPA at max replicas and KEDA scaler errors are all defined."""
    assert {rule["alert"] for rule in _alerts()} == REQUIRED_ALERTS


@pytest.mark.parametrize("name", sorted(REQUIRED_ALERTS))
def test_every_alert_is_tested_firing_and_not_firing(name: str) -> None:
    """Each alert has a promtool case that expects it to fire and one that expects silence."""
    cases = [case for case in _alert_cases() if case["alertname"] == name]
    assert any(case.get("exp_alerts") for case in cases), f"{name} never expected to fire"
    assert any(not case.get("exp_alerts") for case in cases), f"{name} never expected quiet"


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_has_severity_summary_description_and_runbook(rule: dict[str, Any]) -> None:
    """Alerts carry a severity label and summary, description and runbook annotations."""
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert {"summary", "description", "runbook"} <= rule["annotations"].keys()
    assert all(text.strip() for text in rule["annotations"].values())
    assert re.fullmatch(r"\d+m", rule["for"]), "every alert waits before firing"


def test_rules_read_only_contract_metrics() -> None:
    """Every worker metric a rule reads is in the metric table of docs/contract.md."""
    contract = contract_metrics()
    for rule in load_rules():
        unknown = referenced_metrics(rule["expr"]) - contract.keys()
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"


def test_fleet_wide_gauges_are_never_summed() -> None:
    """Gauges every worker reports identically are aggregated with max, never sum."""
    summed = re.compile(r"sum\s*(by\s*\([^)]*\)\s*)?\(\s*(" + "|".join(FLEET_GAUGES) + r")\b")
    for rule in load_rules():
        assert not summed.search(rule["expr"]), rule["expr"]


def test_no_worker_alert_does_not_depend_on_the_scrape_job_name() -> None:
    """The missing-worker alert uses absent() and no `job` or `up` selector."""
    (rule,) = [rule for rule in _alerts() if rule["alert"] == "WorkflowNoWorkerScraped"]
    assert "absent(workflow_jobs_capacity)" in rule["expr"]
    assert "job=" not in rule["expr"]
    assert not re.search(r"\bup\b", rule["expr"])


def test_recording_rules_follow_the_naming_convention() -> None:
    """Recorded series are named level:metric:operations after the Prometheus convention."""
    records = [rule["record"] for rule in load_rules() if "record" in rule]
    assert records
    for name in records:
        assert re.fullmatch(r"namespace_(queue|deployment):workflow_[a-z_]+:[a-z0-9_]+", name), name


@pytest.mark.parametrize("slo", ["workflow_jobs_failed", "workflow_job_wait_slow"])
def test_burn_rate_windows_are_recorded(slo: str) -> None:
    """Both SLO ratios are recorded over the four windows the burn-rate alerts pair up."""
    records = {rule["record"] for rule in load_rules() if "record" in rule}
    for window in ("5m", "30m", "1h", "6h"):
        assert f"namespace_queue:{slo}:ratio_rate{window}" in records


def test_alerts_keep_the_namespace() -> None:
    """Every alert's aggregations and matches keep `namespace`, so one environment's alert never
    carries another's numbers (absent() aside, which has no labels at all)."""
    for rule in _alerts():
        for clause in re.findall(r"\b(?:by|on) \(([^)]*)\)", rule["expr"]):
            assert "namespace" in [label.strip() for label in clause.split(",")], rule["alert"]
