"""PromQL of the Kubernetes and KEDA panels, and the external series they read.

kube-state-metrics, the kubelet's cAdvisor and the KEDA operator export these series, not the
worker. The `deployment` variable links them to the workers: its values are cut from the pod names
of the workers serving the selected namespaces and queues (a Deployment's pods are named
`<deployment>-<pod-template-hash>-<suffix>`). KEDA names the HPA it creates `keda-hpa-<name>` and
the chart gives the ScaledObject the Deployment's name. Everything is grouped by `namespace`.
"""

from __future__ import annotations

from typing import Final

from dashboards.queries import RATE

# Grafana variable regex: the capture group is the Deployment's name.
DEPLOYMENT_REGEX: Final = "/^(.+)-[a-z0-9]{1,10}-[a-z0-9]{5}$/"
DEPLOYMENT_QUERY: Final = (
    'label_values(workflow_jobs_capacity{namespace=~"$namespace", queue=~"$queue"}, pod)'
)

DEPLOY_SEL: Final = 'namespace=~"$namespace", deployment=~"$deployment"'
HPA_SEL: Final = 'namespace=~"$namespace", horizontalpodautoscaler=~"keda-hpa-$deployment"'
POD_SEL: Final = 'namespace=~"$namespace", pod=~"$deployment-[a-z0-9]{1,10}-[a-z0-9]{5}"'
# cAdvisor also reports the pod's own cgroup (container="") and, on old runtimes, "POD".
CONTAINER_SEL: Final = f'{POD_SEL}, container!="", container!="POD"'
POD_BY: Final = "namespace, pod, container"

HPA_MAX_ALERT: Final = "WorkflowWorkersAtMaxReplicas"
KEDA_ALERT: Final = "WorkflowKedaScalerErrors"

# Every series the dashboard and rules read that the worker does not export: name -> (exporter,
# labels). The label sets are those the exporters document; the tests serve exactly these.
EXTERNAL: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "kube_deployment_status_replicas": ("kube-state-metrics", ("namespace", "deployment")),
    "kube_deployment_status_replicas_available": (
        "kube-state-metrics",
        ("namespace", "deployment"),
    ),
    "kube_deployment_spec_replicas": ("kube-state-metrics", ("namespace", "deployment")),
    "kube_deployment_status_observed_generation": (
        "kube-state-metrics",
        ("namespace", "deployment"),
    ),
    "kube_horizontalpodautoscaler_status_current_replicas": (
        "kube-state-metrics",
        ("namespace", "horizontalpodautoscaler"),
    ),
    "kube_horizontalpodautoscaler_status_desired_replicas": (
        "kube-state-metrics",
        ("namespace", "horizontalpodautoscaler"),
    ),
    "kube_horizontalpodautoscaler_spec_max_replicas": (
        "kube-state-metrics",
        ("namespace", "horizontalpodautoscaler"),
    ),
    "kube_pod_container_status_restarts_total": (
        "kube-state-metrics",
        ("namespace", "pod", "uid", "container"),
    ),
    "kube_pod_container_status_last_terminated_reason": (
        "kube-state-metrics",
        ("namespace", "pod", "uid", "container", "reason"),
    ),
    "kube_pod_container_resource_requests": (
        "kube-state-metrics",
        ("namespace", "pod", "uid", "container", "node", "resource", "unit"),
    ),
    "kube_pod_container_resource_limits": (
        "kube-state-metrics",
        ("namespace", "pod", "uid", "container", "node", "resource", "unit"),
    ),
    "container_cpu_usage_seconds_total": (
        "cadvisor",
        ("namespace", "pod", "container", "id", "image", "name"),
    ),
    "container_memory_working_set_bytes": (
        "cadvisor",
        ("namespace", "pod", "container", "id", "image", "name"),
    ),
    "keda_scaler_metrics_value": (
        "keda",
        ("namespace", "metric", "scaledObject", "scaler", "triggerIndex", "type"),
    ),
    "keda_scaler_detail_errors_total": (
        "keda",
        ("namespace", "metric", "scaledObject", "scaler", "triggerIndex", "type"),
    ),
}


def deployment_gauge(metric: str) -> str:
    """A kube-state-metrics Deployment gauge (max: two kube-state-metrics replicas may report)."""
    return f"max by (namespace, deployment) ({metric}{{{DEPLOY_SEL}}})"


def hpa_gauge(metric: str) -> str:
    """A gauge of the HPA KEDA made for the Deployment, labelled with the Deployment's name."""
    return (
        f"label_replace(max by (namespace, horizontalpodautoscaler) ({metric}{{{HPA_SEL}}}),\n"
        '"deployment", "$1", "horizontalpodautoscaler", "keda-hpa-(.+)")'
    )


def keda(metric: str, by: str, *, counter: bool) -> str:
    """A KEDA operator series per namespace and `by`, whatever the scrape did to `namespace`.

    KEDA's own `namespace` label (the ScaledObject's) becomes `exported_namespace` when the scrape
    adds a `namespace` target label without honor_labels, as KEDA's ServiceMonitor does; the
    first arm reads that form, the second the honoured one.
    """

    def series(sel: str) -> str:
        selector = f'{metric}{{{sel}, scaledObject=~"$deployment"}}'
        return f"rate({selector}[{RATE}])" if counter else selector

    agg = "sum" if counter else "max"
    renamed = series('exported_namespace=~"$namespace"')
    own = series('exported_namespace="", namespace=~"$namespace"')
    return (
        f"{agg} by (namespace, {by}) (label_replace({renamed},\n"
        '"namespace", "$1", "exported_namespace", "(.+)"))\n'
        f"or {agg} by (namespace, {by}) ({own})"
    )


REPLICAS_CURRENT: Final = deployment_gauge("kube_deployment_status_replicas")
REPLICAS_AVAILABLE: Final = deployment_gauge("kube_deployment_status_replicas_available")
REPLICAS_DESIRED: Final = hpa_gauge("kube_horizontalpodautoscaler_status_desired_replicas")
REPLICAS_MAX: Final = hpa_gauge("kube_horizontalpodautoscaler_spec_max_replicas")

KEDA_VALUE: Final = keda("keda_scaler_metrics_value", "scaledObject, metric", counter=False)
KEDA_ERRORS: Final = keda("keda_scaler_detail_errors_total", "scaledObject", counter=True)

CPU: Final = (
    f"sum by ({POD_BY}) (rate(container_cpu_usage_seconds_total{{{CONTAINER_SEL}}}[{RATE}]))"
)
CPU_REQUEST: Final = (
    f'max by ({POD_BY}) (kube_pod_container_resource_requests{{{POD_SEL}, resource="cpu"}})'
)
# max, not sum: a restarted container's old cgroup lingers for a while under another `id`.
MEMORY: Final = f"max by ({POD_BY}) (container_memory_working_set_bytes{{{CONTAINER_SEL}}})"
MEMORY_LIMIT: Final = (
    f'max by ({POD_BY}) (kube_pod_container_resource_limits{{{POD_SEL}, resource="memory"}})'
)
RESTARTS: Final = (
    f"sum by ({POD_BY}) (increase(kube_pod_container_status_restarts_total{{{POD_SEL}}}[{RATE}]))"
)
# Restarts whose last termination was an OOM kill (kube-state-metrics keeps only the last reason).
OOM_KILLS: Final = (
    f"({RESTARTS}\n* on ({POD_BY}) max by ({POD_BY}) "
    f'(kube_pod_container_status_last_terminated_reason{{{POD_SEL}, reason="OOMKilled"}}))\n'
    f"or on ({POD_BY}) (0 * {RESTARTS})"
)

# A rollout changes the Deployment's generation without changing its replica count; a scale
# event (KEDA, kubectl scale) changes both, and is not marked.
DEPLOYS: Final = (
    "max by (namespace, deployment) "
    f"(changes(kube_deployment_status_observed_generation{{{DEPLOY_SEL}}}[{RATE}])) > 0\n"
    "unless on (namespace, deployment) max by (namespace, deployment) "
    f"(changes(kube_deployment_spec_replicas{{{DEPLOY_SEL}}}[{RATE}])) > 0"
)
