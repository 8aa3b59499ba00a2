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

from dashboards import generate, kube, queries
from tests.prom_helpers import contract_labels, contract_metrics, load_rules, referenced_metrics

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
SRE_TITLES = [
    "SLO burn rate: failures and queue wait",
    "Event-loop lag and blocks",
    "Redis: disconnected pods and errors",
    "Requeues, redeliveries and lost leases",
    "Rate-limited starts",
    "Replicas: current, desired, max",
    "KEDA scaler: metric value and errors",
    "CPU per container",
    "Memory working set",
    "Restarts and OOM kills",
]
ROWS = [
    "Jobs and queues",
    "Service level objectives",
    "Worker runtime: event loop, Redis, requeues, limits",
    "Kubernetes and KEDA",
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


def _panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in model["panels"] if panel["type"] != "row"]


def _exprs(model: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in _panels(model) for target in panel["targets"]]


def _all_exprs(model: dict[str, Any]) -> list[str]:
    """Panel queries and annotation queries."""
    return _exprs(model) + [a["expr"] for a in model["annotations"]["list"]]


def _unquoted(expr: str) -> str:
    """The expression with its string literals emptied (label values hold regex brackets)."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def _selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, matchers) of every vector selector in `expr`."""
    return re.findall(r"(?<![\w:])([a-zA-Z_][\w:]*)\{([^}]*)\}", expr)


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
    """The first row holds exactly the ten panels the issue lists, in order."""
    rows = [i for i, panel in enumerate(model["panels"]) if panel["type"] == "row"]
    first = model["panels"][rows[0] + 1 : rows[1]]
    assert [panel["title"] for panel in first] == TITLES


def test_rows_and_sre_panels(model: dict[str, Any]) -> None:
    """The rows come in order and the SRE panels follow the ten, every panel id unique."""
    assert [p["title"] for p in model["panels"] if p["type"] == "row"] == ROWS
    assert [p["title"] for p in _panels(model)] == TITLES + SRE_TITLES
    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids)) == len(ROWS) + len(TITLES) + len(SRE_TITLES)


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
    assert len(refs) >= len(_panels(model)) + 4 + 2  # panels, query variables, annotations
    for ref in refs:
        assert ref == {"type": "prometheus", "uid": "${datasource}"}


def test_variables(model: dict[str, Any]) -> None:
    """datasource, then multi-select namespace, queue, workflow and deployment variables; the
    label ones match anything when All, the deployment one means exactly its own options."""
    variables = {var["name"]: var for var in model["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "queue", "workflow", "deployment"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "queue", "workflow", "deployment"):
        var = variables[name]
        assert var["type"] == "query"
        assert var["multi"] is True
        assert var["includeAll"] is True
        assert var["current"]["value"] == "$__all"
    for name, metric in [
        ("namespace", "workflow_jobs_capacity"),
        ("queue", "workflow_jobs_capacity"),
        ("workflow", "workflow_jobs_total"),
    ]:
        assert variables[name]["query"].startswith(f"label_values({metric}")
        assert variables[name]["query"].endswith(f", {name})")
        assert variables[name]["allValue"] == ".*"
    deployment = variables["deployment"]
    assert deployment["query"] == kube.DEPLOYMENT_QUERY
    assert deployment["query"].endswith(", pod)")
    assert deployment["regex"] == kube.DEPLOYMENT_REGEX
    assert "allValue" not in deployment


@pytest.mark.parametrize(
    ("pod", "deployment"),
    [
        ("workflow-worker-6b8f9c7d45-x2kq9", "workflow-worker"),
        ("wf-prod-worker-5d9c7b-abcde", "wf-prod-worker"),
        ("w-7c4f9-zx2k8", "w"),
    ],
)
def test_deployment_regex_cuts_the_replicaset_suffixes(pod: str, deployment: str) -> None:
    """The deployment variable's regex (applied by Grafana) and the recording rule's both turn a
    ReplicaSet pod name into its Deployment's name."""
    grafana = re.fullmatch(kube.DEPLOYMENT_REGEX.strip("/"), pod)
    assert grafana
    assert grafana.group(1) == deployment
    (rule,) = [r for r in load_rules() if r.get("record", "").startswith("namespace_deployment:")]
    promql = re.search(r'"pod", "([^"]+)"', rule["expr"])
    assert promql, rule["expr"]
    assert f"^{promql.group(1)}$" == kube.DEPLOYMENT_REGEX.strip("/")
    assert re.fullmatch(
        kube.POD_SEL.split('pod=~"')[1].rstrip('"').replace("$deployment", deployment), pod
    )


def test_every_range_uses_rate_interval(model: dict[str, Any]) -> None:
    """Every range selector in a panel or annotation query is [$__rate_interval]."""
    exprs = [_unquoted(expr) for expr in _all_exprs(model)]
    ranges = [r for expr in exprs for r in re.findall(r"\[[^\]]*\]", expr)]
    assert ranges
    assert set(ranges) == {"[$__rate_interval]"}
    for expr in exprs:
        for call in re.finditer(r"\b(rate|increase|irate|changes)\(", expr):
            assert expr[call.end() :].split(")")[0].endswith("[$__rate_interval]"), expr


def test_every_aggregation_keeps_namespace(model: dict[str, Any]) -> None:
    """Every `by` and `on` clause keeps the namespace, so environments never add up, and every
    percentile is computed per namespace and queue."""
    for expr in _all_exprs(model):
        clauses = re.findall(r"\b(?:by|on) \(([^)]*)\)", expr)
        for clause in clauses:
            assert "namespace" in [label.strip() for label in clause.split(",")], expr
        aggregations = re.findall(r"\b(sum|max|min|count|avg)\s*\(", expr)
        assert not aggregations, f"aggregation without by (): {expr}"
        for inner in re.findall(r"histogram_quantile\([\d.]+, sum by \(([^)]*)\)", expr):
            assert [label.strip() for label in inner.split(",")] == ["namespace", "queue", "le"]


def test_every_query_filters_on_the_variables(model: dict[str, Any]) -> None:
    """Worker selectors honour $namespace, $queue and $workflow wherever the metric carries the
    label (the stall panel counts every workflow on purpose); Kubernetes and KEDA selectors
    honour $namespace and are scoped to the $deployment objects."""
    labels = contract_labels()
    stall = next(p for p in _panels(model) if p["title"] == "Queue stall")
    stall_exprs = {t["expr"] for t in stall["targets"]}
    for expr in _all_exprs(model):
        for name, matchers in _selectors(expr):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            if name == "ALERTS" or base in labels or name in labels:
                own = labels.get(base, labels.get(name, ("queue",)))
                assert 'namespace=~"$namespace"' in matchers, expr
                if "queue" in own:
                    assert re.search(r'queue=~"\$queue\|?"', matchers), expr
                if "workflow" in own and expr not in stall_exprs:
                    assert 'workflow=~"$workflow"' in matchers, expr
                continue
            assert name in kube.EXTERNAL, f"{name} is neither a worker nor a known external metric"
            assert re.search(r'(exported_)?namespace=~"\$namespace"', matchers), expr
            assert re.search(
                r'(deployment|scaledObject)=~"\$deployment"|=~"keda-hpa-\$deployment"'
                r'|pod=~"\$deployment-',
                matchers,
            ), expr


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
    """Every worker metric a panel reads is in the metric table of docs/contract.md, and every
    other series is one the Kubernetes and KEDA exporters document (dashboards/kube.py)."""
    contract = contract_metrics()
    for expr in _all_exprs(model):
        assert referenced_metrics(expr) <= contract.keys(), expr
        for name, _ in _selectors(expr):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            known = name in contract or base in contract or name == "ALERTS"
            assert known or name in kube.EXTERNAL, (name, expr)


def test_rules_read_only_documented_external_series() -> None:
    """The rules read no Kubernetes or KEDA series the dashboard's exporter list lacks."""
    for rule in load_rules():
        for name in re.findall(r"\b((?:kube|container|keda)_[a-z_]+)\b", rule["expr"]):
            assert name in kube.EXTERNAL, (name, rule.get("alert") or rule.get("record"))


def test_every_panel_has_targets_with_unique_ref_ids(model: dict[str, Any]) -> None:
    """Each panel has at least one query, each with an expression and its own refId."""
    for panel in _panels(model):
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
    panel = next(p for p in _panels(model) if p["title"] == "Queue stall")
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


def test_slo_numbers_agree_between_dashboard_and_rules(model: dict[str, Any]) -> None:
    """The burn-rate panel's lines, budgets and wait bound are the ones the SLO alerts use."""
    rules = {r.get("alert") or r["record"]: r["expr"] for r in load_rules()}
    panel = next(p for p in _panels(model) if p["title"].startswith("SLO burn rate"))
    lines = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]
    assert lines == [queries.BURN_SLOW, queries.BURN_FAST]
    for alert, budget, record in [
        (queries.FAILURE_BURN_ALERT, queries.FAILURE_BUDGET, "workflow_jobs_failed"),
        (queries.WAIT_BURN_ALERT, queries.WAIT_BUDGET, "workflow_job_wait_slow"),
    ]:
        pairs = re.findall(rf"{record}:ratio_rate(\w+) > \(([\d.]+) \* ([\d.]+)\)", rules[alert])
        assert sorted(pairs) == sorted(
            [
                ("1h", f"{queries.BURN_FAST:g}", f"{budget:g}"),
                ("5m", f"{queries.BURN_FAST:g}", f"{budget:g}"),
                ("6h", f"{queries.BURN_SLOW:g}", f"{budget:g}"),
                ("30m", f"{queries.BURN_SLOW:g}", f"{budget:g}"),
            ]
        ), rules[alert]
        assert f"/ {budget}" in json.dumps(panel["targets"])
    for window in ("5m", "30m", "1h", "6h"):
        wait = rules[f"namespace_queue:workflow_job_wait_slow:ratio_rate{window}"]
        assert f'le="{queries.WAIT_SLO_LE}"' in wait
    assert f'le=\\"{queries.WAIT_SLO_LE}\\"' in json.dumps(panel["targets"])


def test_deploy_annotation_marks_rollouts_not_scaling(model: dict[str, Any]) -> None:
    """The deployment annotation reads generation changes without replica changes, scoped to
    the selected Deployments, with a title naming the Deployment."""
    (deploys,) = [
        a for a in model["annotations"]["list"] if a["name"] == generate.DEPLOY_ANNOTATION
    ]
    assert deploys["expr"] == kube.DEPLOYS
    assert "kube_deployment_status_observed_generation" in deploys["expr"]
    assert "unless on (namespace, deployment)" in deploys["expr"]
    assert "kube_deployment_spec_replicas" in deploys["expr"]
    assert deploys["titleFormat"] == "Rollout of {{deployment}}"
    assert deploys["enable"] is True


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
    for title in TITLES + SRE_TITLES:
        assert f"| {title} |" in docs, title
    for rule in load_rules():
        if "alert" in rule:
            assert f"| {rule['alert']} |" in docs, rule["alert"]
