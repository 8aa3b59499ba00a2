"""Dashboard queries on known series, evaluated by promtool's PromQL engine (Prometheus 2.42).

Two environments (prod, staging) run a queue of the same name and a Deployment of the same name;
the queries, with Grafana's variables filled in for a selection of both namespaces, must keep
them apart, compute percentiles per namespace, honour the queue and workflow selections, find the
Kubernetes and KEDA objects of the workers (KEDA's namespace label renamed or not), count OOM
kills, and mark a rollout but not a scale event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dashboards import kube
from dashboards import queries as q
from tests.prom_helpers import interpolate, promtool

WINDOW = "4m"
VARIABLES = {
    "namespace": ["prod", "staging"],
    "queue": ["q"],
    "workflow": ["a"],
    "deployment": ["workflow-worker"],
}
P1, P2 = "workflow-worker-6b8f9c7d45-x2kq9", "workflow-worker-6b8f9c7d45-b7m4z"
S1 = "workflow-worker-58d4c6f9b7-qw2lp"
OTHER = "other-worker-7c4f9d8b6-zx2k8"  # prod, queue "other", Deployment other-worker

PODS = [("prod", "q", P1), ("prod", "q", P2), ("staging", "q", S1), ("prod", "other", OTHER)]


def _labels(**labels: str) -> str:
    return "{" + ", ".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


def _series(metric: str, values: str, /, **labels: str) -> dict[str, str]:
    return {"series": metric + _labels(**labels), "values": values}


def _worker_series() -> list[dict[str, str]]:
    queued = {"q": {"prod": "7x20", "staging": "3x20"}, "other": {"prod": "100x20"}}
    active = {P1: "5x20", P2: "5x20", S1: "10x20", OTHER: "1x20"}
    series = []
    for ns, queue, pod in PODS:
        common = {"namespace": ns, "queue": queue, "pod": pod}
        series += [
            _series("workflow_jobs_queued", queued[queue][ns], **common),
            _series("workflow_jobs_capacity", "10x20", **common),
            _series("workflow_jobs_active", active[pod], **common),
        ]
    wf_a = {"namespace": "prod", "queue": "q", "pod": P1, "workflow": "a"}
    series += [
        # prod/q, workflow a: 3 of 4 succeed. Workflow b (not selected) always succeeds.
        _series("workflow_jobs_total", "0+30x20", **wf_a, status="success"),
        _series("workflow_jobs_total", "0+10x20", **wf_a, status="failure"),
        _series("workflow_jobs_total", "0+1000x20", **{**wf_a, "workflow": "b"}, status="success"),
        _series(
            "workflow_jobs_total",
            "0+10x20",
            namespace="staging",
            queue="q",
            pod=S1,
            workflow="a",
            status="success",
        ),
        # Leases lost: a prod pod of queue q, and the prod pod of queue "other".
        _series("workflow_leases_lost_total", "0+1x20", namespace="prod", pod=P1),
        _series("workflow_leases_lost_total", "0+5x20", namespace="prod", pod=OTHER),
    ]
    # Run time: prod jobs take 0.25-0.5 s, staging jobs 5-10 s.
    for ns, pod, low, high in [("prod", P1, "0.25", "0.5"), ("staging", S1, "5.0", "10.0")]:
        hist = {"namespace": ns, "queue": "q", "pod": pod, "workflow": "a"}
        series += [
            _series("workflow_job_duration_seconds_bucket", "0x20", **hist, le=low),
            _series("workflow_job_duration_seconds_bucket", "0+10x20", **hist, le=high),
            _series("workflow_job_duration_seconds_bucket", "0+10x20", **hist, le="+Inf"),
            _series("workflow_job_duration_seconds_count", "0+10x20", **hist),
        ]
    return series


def _kube_series() -> list[dict[str, str]]:
    prod = {"namespace": "prod", "deployment": "workflow-worker"}
    staging = {"namespace": "staging", "deployment": "workflow-worker"}
    other = {"namespace": "prod", "deployment": "other-app"}
    hpa = "keda-hpa-workflow-worker"
    keda = {"scaledObject": "workflow-worker", "scaler": "redisScaler", "type": "scaledobject"}
    keda |= {"triggerIndex": "0", "metric": "s0-redis-q"}
    p1 = {"namespace": "prod", "pod": P1, "uid": "u1", "container": "worker"}
    p2 = {"namespace": "prod", "pod": P2, "uid": "u2", "container": "worker"}
    cadvisor = {"namespace": "prod", "pod": P1, "id": "/kubepods/u1/c1", "image": "w", "name": "c1"}
    return [
        # prod rolls out at 6m (generation moves, replicas do not); staging scales at 6m
        # (both move); other-app rolls out but is not a selected Deployment.
        _series("kube_deployment_status_observed_generation", "3x5 4x15", **prod),
        _series("kube_deployment_spec_replicas", "2x20", **prod),
        _series("kube_deployment_status_observed_generation", "7x5 8x15", **staging),
        _series("kube_deployment_spec_replicas", "1x5 2x15", **staging),
        _series("kube_deployment_status_observed_generation", "1x5 2x15", **other),
        _series("kube_deployment_spec_replicas", "1x20", **other),
        _series("kube_deployment_status_replicas", "2x20", **prod),
        _series("kube_deployment_status_replicas", "1x20", **staging),
        _series("kube_deployment_status_replicas", "9x20", **other),
        _series(
            "kube_horizontalpodautoscaler_spec_max_replicas",
            "10x20",
            namespace="prod",
            horizontalpodautoscaler=hpa,
        ),
        _series(
            "kube_horizontalpodautoscaler_spec_max_replicas",
            "3x20",
            namespace="staging",
            horizontalpodautoscaler=hpa,
        ),
        _series(
            "kube_horizontalpodautoscaler_spec_max_replicas",
            "5x20",
            namespace="prod",
            horizontalpodautoscaler="keda-hpa-other-app",
        ),
        # P1 restarts after an OOM kill at 6m, P2 after an error.
        _series("kube_pod_container_status_restarts_total", "0x5 1x15", **p1),
        _series(
            "kube_pod_container_status_last_terminated_reason", "_x5 1x15", **p1, reason="OOMKilled"
        ),
        _series("kube_pod_container_status_restarts_total", "0x5 1x15", **p2),
        _series(
            "kube_pod_container_status_last_terminated_reason", "_x5 1x15", **p2, reason="Error"
        ),
        # Half a core in the worker container; the pod's own cgroup (container="") is not counted.
        _series("container_cpu_usage_seconds_total", "0+30x20", **cadvisor, container="worker"),
        _series("container_cpu_usage_seconds_total", "0+60x20", **cadvisor, container=""),
        # KEDA: prod's series renamed by the scrape, staging's kept, dev's not selected.
        _series(
            "keda_scaler_detail_errors_total",
            "0+6x20",
            **keda,
            namespace="keda",
            exported_namespace="prod",
        ),
        _series("keda_scaler_detail_errors_total", "0+12x20", **keda, namespace="staging"),
        _series(
            "keda_scaler_detail_errors_total",
            "0+60x20",
            **keda,
            namespace="keda",
            exported_namespace="dev",
        ),
    ]


def _check(expr: str, eval_time: str, samples: list[tuple[dict[str, str], float]]) -> Any:
    return {
        "expr": interpolate(expr, VARIABLES, WINDOW),
        "eval_time": eval_time,
        "exp_samples": [{"labels": _labels(**labels), "value": value} for labels, value in samples],
    }


def _permille(expr: str) -> str:
    """Rounded thousandths: ratios of rates are not exact in floating point."""
    return f"round(1000 * ({expr}))"


PROD_Q = {"namespace": "prod", "queue": "q"}
STAGING_Q = {"namespace": "staging", "queue": "q"}
WW = {"deployment": "workflow-worker"}

CHECKS = [
    # Fleet-wide gauge: one value per environment, not the larger of the two; queue "other"
    # is not selected.
    _check(q.QUEUED, "10m", [(PROD_Q, 7), (STAGING_Q, 3)]),
    _check(q.SATURATION, "10m", [(PROD_Q, 0.5), (STAGING_Q, 1)]),
    # Workflow b (not selected) would lift prod to 99%.
    _check(_permille(q.SUCCESS_RATIO), "10m", [(PROD_Q, 750), (STAGING_Q, 1000)]),
    _check(_permille(q.FAILURE_BURN), "10m", [(PROD_Q, 25000), (STAGING_Q, 0)]),
    # Percentiles per namespace: pooled, prod's would be dragged towards staging's.
    _check(
        dict(q.duration_quantiles())[f"{q.NSQ} p50"], "10m", [(PROD_Q, 0.375), (STAGING_Q, 7.5)]
    ),
    # A stall counts every workflow: prod/q finishes jobs (of workflow b too), staging/q as well.
    _check(q.STALLED_JOBS, "10m", [(PROD_Q, 0), (STAGING_Q, 0)]),
    _check(_permille(q.LEASES_LOST), "10m", [({"namespace": "prod", "pod": P1}, round(1000 / 60))]),
    _check(
        kube.REPLICAS_MAX,
        "10m",
        [
            (
                {"namespace": "prod", "horizontalpodautoscaler": "keda-hpa-workflow-worker", **WW},
                10,
            ),
            (
                {
                    "namespace": "staging",
                    "horizontalpodautoscaler": "keda-hpa-workflow-worker",
                    **WW,
                },
                3,
            ),
        ],
    ),
    _check(
        kube.REPLICAS_CURRENT,
        "10m",
        [({"namespace": "prod", **WW}, 2), ({"namespace": "staging", **WW}, 1)],
    ),
    _check(
        _permille(kube.KEDA_ERRORS),
        "10m",
        [
            ({"namespace": "prod", "scaledObject": "workflow-worker"}, 100),
            ({"namespace": "staging", "scaledObject": "workflow-worker"}, 200),
        ],
    ),
    _check(
        _permille(kube.CPU), "10m", [({"namespace": "prod", "pod": P1, "container": "worker"}, 500)]
    ),
    _check(
        kube.OOM_KILLS,
        "7m",
        [
            ({"namespace": "prod", "pod": P1, "container": "worker"}, 1),
            ({"namespace": "prod", "pod": P2, "container": "worker"}, 0),
        ],
    ),
    # The rollout is marked while it is inside the window, the scale event never.
    _check(kube.DEPLOYS, "7m", [({"namespace": "prod", **WW}, 1)]),
    _check(kube.DEPLOYS, "15m", []),
]


def test_queries_keep_environments_apart_and_find_their_objects(tmp_path: Path) -> None:
    """promtool evaluates the panel queries on two same-named environments and finds exactly
    the expected series and values (the file it runs lists every case)."""
    (tmp_path / "empty.rules.yml").write_text("groups: []\n", encoding="utf-8")
    doc = {
        "rule_files": ["empty.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": _worker_series() + _kube_series(),
                "promql_expr_test": CHECKS,
            }
        ],
    }
    path = tmp_path / "dashboard_queries_test.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    result = promtool("test", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_pooling_the_environments_would_be_caught(tmp_path: Path) -> None:
    """The same file fails when a query groups by queue alone (the bug this layout fixes)."""
    pooled = dict(CHECKS[0])
    pooled["expr"] = pooled["expr"].replace("by (namespace, queue)", "by (queue)")
    (tmp_path / "empty.rules.yml").write_text("groups: []\n", encoding="utf-8")
    doc = {
        "rule_files": ["empty.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {"interval": "1m", "input_series": _worker_series(), "promql_expr_test": [pooled]}
        ],
    }
    path = tmp_path / "pooled_test.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    result = promtool("test", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'got: {queue="q"} 7' in result.stdout + result.stderr
