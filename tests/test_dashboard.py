"""The generated Grafana dashboard: in sync with its generator, and following our conventions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as dash_m
from grafana_foundation_sdk.models import prometheus as prom_m

from dashboards import generate, queries
from tests.prom_helpers import contract_metrics, load_rules, referenced_metrics

TITLES = [
    "Active workflows",
    "Queue depth: queued and in flight",
    "Success rate",
    "Throughput by outcome",
    "Job duration p50 / p90 / p99",
    "Per pod: active jobs and throughput",
    "Time waiting in the queue",
    "Retries and dead letters",
    "Saturation: active / capacity",
    "Queue stall",
]
FLEET_GAUGES = (
    "workflow_jobs_queued",
    "workflow_jobs_inflight",
    "workflow_jobs_delayed",
    "workflow_jobs_dead_letter",
    "workflow_queue_oldest_age_seconds",
)


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    """The committed dashboard JSON."""
    data: dict[str, Any] = json.loads(generate.DASHBOARD_JSON.read_text(encoding="utf-8"))
    return data


def _exprs(model: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in model["panels"] for target in panel["targets"]]


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def test_committed_json_equals_generator_output() -> None:
    """dashboards/workflow-worker.json is exactly what dashboards/generate.py produces."""
    assert generate.DASHBOARD_JSON.read_text(encoding="utf-8") == generate.render()
    assert generate.main(["--check"]) == 0


def test_check_mode_fails_on_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--check` exits 1 and leaves the file alone when the committed JSON was edited by hand."""
    stale = tmp_path / "workflow-worker.json"
    stale.write_text(generate.render().replace("Success rate", "Hand-edited"), encoding="utf-8")
    monkeypatch.setattr(generate, "DASHBOARD_JSON", stale)
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    monkeypatch.setattr(generate, "CHART_RULES", tmp_path / "rules.yml")
    (tmp_path / "rules.yml").write_text(generate.RULES.read_text(encoding="utf-8"))
    assert generate.main(["--check"]) == 1
    assert "Hand-edited" in stale.read_text(encoding="utf-8")
    assert "workflow-worker.json is stale" in capsys.readouterr().err
    assert generate.main([]) == 0
    assert stale.read_text(encoding="utf-8") == generate.render()


def test_chart_rule_file_is_an_identical_copy() -> None:
    """The chart's rule file (read by its PrometheusRule template) equals the single source."""
    assert generate.CHART_RULES.read_bytes() == generate.RULES.read_bytes()


def test_ten_panels_in_the_issue_order(model: dict[str, Any]) -> None:
    """The dashboard has exactly the ten panels the issue lists, in order, with unique ids."""
    assert [panel["title"] for panel in model["panels"]] == TITLES
    assert len({panel["id"] for panel in model["panels"]}) == 10


def test_identity_is_stable_and_not_an_export(model: dict[str, Any]) -> None:
    """uid is fixed, id is null, and nothing of Grafana's "export for sharing" form is left."""
    assert model["uid"] == "workflow-worker"
    assert model["id"] is None
    assert "__inputs" not in model
    assert "__requires" not in model
    assert "${DS_" not in json.dumps(model)
    assert model["schemaVersion"] >= 39, "built for Grafana 11"


def test_datasource_is_a_variable_everywhere(model: dict[str, Any]) -> None:
    """Every datasource reference in the model points at the `datasource` variable."""
    refs = [value for key, value in _walk(model) if key == "datasource"]
    assert len(refs) >= 10 + 2 + 1  # panels, query variables, alert annotation
    for ref in refs:
        assert ref == {"type": "prometheus", "uid": "${datasource}"}


def test_variables_datasource_namespace_queue(model: dict[str, Any]) -> None:
    """The dashboard has datasource, namespace and queue variables over workflow_jobs_capacity."""
    variables = {var["name"]: var for var in model["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "queue"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "queue"):
        var = variables[name]
        assert var["type"] == "query"
        assert var["query"].startswith("label_values(workflow_jobs_capacity")
        assert var["query"].endswith(f", {name})")
        assert var["includeAll"] is True
        assert var["allValue"] == ".*"


def test_every_range_uses_rate_interval(model: dict[str, Any]) -> None:
    """Every range selector in a panel query is [$__rate_interval], never a fixed window."""
    ranges = [r for expr in _exprs(model) for r in re.findall(r"\[[^\]]*\]", expr)]
    assert ranges
    assert set(ranges) == {"[$__rate_interval]"}
    for expr in _exprs(model):
        for call in re.finditer(r"\b(rate|increase|irate)\(", expr):
            assert expr[call.end() :].split(")")[0].endswith("[$__rate_interval]"), expr


def test_every_query_filters_on_namespace_and_queue(model: dict[str, Any]) -> None:
    """Each worker metric selector in a panel honours the namespace and queue variables."""
    for expr in _exprs(model):
        for selector in re.findall(r"(?<![\w:])(?:workflow_\w+|ALERTS)\{([^}]*)\}", expr):
            assert 'namespace=~"$namespace"' in selector, expr
            assert 'queue=~"$queue"' in selector, expr


def test_fleet_wide_gauges_use_max_and_process_gauges_use_sum(model: dict[str, Any]) -> None:
    """Gauges every worker reports identically are aggregated with max; active/capacity summed."""
    for expr in _exprs(model):
        for name in re.findall(
            r"(\w+)\s*by \([^)]*\) \((workflow_jobs_\w+|workflow_queue_\w+)\{", expr
        ):
            aggregation, metric = name
            expected = "max" if metric in FLEET_GAUGES else "sum"
            if metric in {*FLEET_GAUGES, "workflow_jobs_active", "workflow_jobs_capacity"}:
                assert aggregation == expected, expr


def test_queries_read_only_contract_metrics(model: dict[str, Any]) -> None:
    """Every worker metric a panel reads is in the metric table of docs/contract.md."""
    contract = contract_metrics()
    for expr in _exprs(model):
        assert referenced_metrics(expr) <= contract.keys(), expr


def test_every_panel_has_targets_with_unique_ref_ids(model: dict[str, Any]) -> None:
    """Each panel has at least one query, each with an expression and its own refId."""
    for panel in model["panels"]:
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids, panel["title"]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"])
        assert panel.get("description"), panel["title"]


def test_panels_fit_the_grid_without_overlap(model: dict[str, Any]) -> None:
    """Panels stay within 24 columns and no two panels share a grid cell."""
    cells: set[tuple[int, int]] = set()
    for panel in model["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


def test_stall_panel_is_tied_to_its_alert(model: dict[str, Any]) -> None:
    """The stall panel names the stall alert, shows its firing state and the alert exists."""
    panel = model["panels"][9]
    alerts = {rule["alert"] for rule in load_rules() if "alert" in rule}
    assert queries.STALL_ALERT in alerts
    assert queries.STALL_ALERT in panel["description"]
    assert any(f'alertname="{queries.STALL_ALERT}"' in t["expr"] for t in panel["targets"])
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["color"] for step in steps] == ["green", "red"]


def test_alert_thresholds_drawn_on_panels_match_the_rules(model: dict[str, Any]) -> None:
    """The dashed alert lines on the wait and saturation panels use the rules' thresholds."""
    exprs = {rule["alert"]: rule["expr"] for rule in load_rules() if "alert" in rule}
    by_title = {panel["title"]: panel for panel in model["panels"]}
    for title, alert in [
        ("Time waiting in the queue", queries.WAIT_ALERT),
        ("Saturation: active / capacity", queries.SATURATION_ALERT),
    ]:
        line = by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"]
        assert re.search(rf"(>|>=) {line:g}\b", exprs[alert]), (title, exprs[alert])


def test_json_parses_back_into_typed_models(model: dict[str, Any]) -> None:
    """The SDK reads the JSON back into a dashboard whose targets are Prometheus queries."""
    register_default_plugins()
    parsed = dash_m.Dashboard.from_json(model)
    assert parsed.uid == "workflow-worker"
    assert parsed.panels is not None
    targets = [t for panel in parsed.panels for t in getattr(panel, "targets", None) or []]
    assert len(targets) == len(_exprs(model))
    assert all(isinstance(target, prom_m.Dataquery) for target in targets)


def test_operator_docs_cover_every_panel_and_alert() -> None:
    """The operator table (docs/observability.md or README.md) names every panel and alert."""
    docs = "".join(
        path.read_text(encoding="utf-8")
        for path in (generate.ROOT / "docs" / "observability.md", generate.ROOT / "README.md")
        if path.exists()
    )
    for title in TITLES:
        assert f"| {title} |" in docs, title
    for rule in load_rules():
        if "alert" in rule:
            assert f"| {rule['alert']} |" in docs, rule["alert"]
