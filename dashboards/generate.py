"""Generate dashboards/workflow-worker.json and the chart's copy of the rule file.

`python -m dashboards.generate` writes both; `--check` writes nothing and exits 1 when a committed
file differs from what this module produces.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dash_m

from dashboards import kube
from dashboards import queries as q
from dashboards.panels import PANELS
from dashboards.sre_panels import KUBE_PANELS, RUNTIME_PANELS, SLO_PANELS
from dashboards.widgets import DATASOURCE, PanelBuilder

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_JSON = ROOT / "dashboards" / "workflow-worker.json"
RULES = ROOT / "dashboards" / "workflow-worker.rules.yml"
CHART_RULES = ROOT / "helm" / "workflow-worker" / "files" / "workflow-worker.rules.yml"
UID = "workflow-worker"


# Rows in display order; the first holds the ten job and queue panels.
ROWS: tuple[tuple[str, tuple[Callable[[], PanelBuilder], ...]], ...] = (
    ("Jobs and queues", PANELS),
    ("Service level objectives", SLO_PANELS),
    ("Worker runtime: event loop, Redis, requeues, limits", RUNTIME_PANELS),
    ("Kubernetes and KEDA", KUBE_PANELS),
)
# Grafana's legacy Prometheus annotation fields, which the SDK's AnnotationQuery does not model.
DEPLOY_ANNOTATION = "Deployments"
DEPLOY_FIELDS = {
    "titleFormat": "Rollout of {{deployment}}",
    "textFormat": "namespace {{namespace}}: the Deployment changed without a replica change",
    "tagKeys": "namespace,deployment",
    "step": "1m",
}


def _label_variable(
    name: str, label: str, query: str, all_value: str | None = ".*"
) -> dash_b.QueryVariable:
    variable = (
        dash_b.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(dash_m.VariableOption(selected=True, text="All", value="$__all"))
    )
    return variable if all_value is None else variable.all_value(all_value)


def _variables() -> list[dash_b.QueryVariable | dash_b.DatasourceVariable]:
    return [
        dash_b.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        _label_variable(
            "namespace", "Namespace", "label_values(workflow_jobs_capacity, namespace)"
        ),
        _label_variable(
            "queue",
            "Queue",
            'label_values(workflow_jobs_capacity{namespace=~"$namespace"}, queue)',
        ),
        _label_variable(
            "workflow",
            "Workflow",
            'label_values(workflow_jobs_total{namespace=~"$namespace", queue=~"$queue"}, workflow)',
        ),
        # No custom all value: "All" must mean these Deployments, not every one in the namespace.
        _label_variable("deployment", "Deployment", kube.DEPLOYMENT_QUERY, all_value=None).regex(
            kube.DEPLOYMENT_REGEX
        ),
    ]


def _annotations() -> list[dash_b.AnnotationQuery]:
    alerts = (
        dash_b.AnnotationQuery()
        .name("workflow-worker alerts")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("red")
        .expr(q.ALERT_ANNOTATIONS)
    )
    deploys = (
        dash_b.AnnotationQuery()
        .name(DEPLOY_ANNOTATION)
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("blue")
        .expr(kube.DEPLOYS)
    )
    return [alerts, deploys]


def build() -> dict[str, Any]:
    """The dashboard model as plain JSON data (uid stable, id null, no `__inputs`)."""
    builder = (
        dash_b.Dashboard("workflow-worker")
        .uid(UID)
        .description(
            "Jobs, queues and workers of workflow-worker (Redis-list job worker), its SLOs, "
            "and the Kubernetes and KEDA objects that run it."
        )
        .tags(["workflow-worker"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .variables(_variables())  # type: ignore[arg-type]
    )
    for annotation in _annotations():
        builder = builder.annotation(annotation)
    for title, panels in ROWS:
        builder = builder.with_row(dash_b.Row(title))
        for panel in panels:
            builder = builder.with_panel(panel())
    model: dict[str, Any] = json.loads(JSONEncoder().encode(builder.build()))
    model["id"] = None
    for number, panel_json in enumerate(model["panels"], start=1):
        panel_json["id"] = number
    for annotation_json in model["annotations"]["list"]:
        if annotation_json["name"] == DEPLOY_ANNOTATION:
            annotation_json.update(DEPLOY_FIELDS)
    return model


def render() -> str:
    """The dashboard JSON text exactly as committed."""
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def outputs() -> dict[Path, str]:
    """Every generated file and its expected content."""
    return {DASHBOARD_JSON: render(), CHART_RULES: RULES.read_text(encoding="utf-8")}


def main(argv: list[str] | None = None) -> int:
    """Write the generated files, or with --check report those that differ (exit 1)."""
    parser = argparse.ArgumentParser(prog="python -m dashboards.generate", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is stale"
    )
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        verb = "is stale (run `just dashboard`)" if args.check else "written"
        print(f"{path.relative_to(ROOT)} {verb}", file=sys.stderr if args.check else sys.stdout)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
