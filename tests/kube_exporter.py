"""A stand-in for kube-state-metrics, the kubelet's cAdvisor and the KEDA operator, for tests.

No cluster runs here, so this serves the series the dashboard's Kubernetes and KEDA panels and the
rules read, under their real names and with the label sets those exporters document
(dashboards/kube.py EXTERNAL), for the worker processes a test runs as "pods". CPU and memory are
those processes' own (from /proc), the KEDA metric values are read from Redis by a callback, and a
test can make a rollout happen or a container be OOM-killed. Nothing here comes from a real
cluster: only the names and labels follow the upstream documentation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.procstat import rss_kib, tree_cpu
from workflow_worker.local.devstack import free_port

CONTAINER = "worker"
PATHS = {"kube-state-metrics": "/ksm", "kubelet": "/metrics/cadvisor", "keda-operator": "/keda"}
CPU_REQUEST = 0.5
MEMORY_LIMIT = 256 * 1024 * 1024
MAX_REPLICAS = 10


@dataclass(frozen=True)
class Pod:
    """A worker process standing in for one pod of the Deployment."""

    name: str
    pid: int
    uid: str


def _line(name: str, labels: Mapping[str, str], value: float) -> str:
    body = ",".join(f'{key}="{val}"' for key, val in labels.items())
    return f"{name}{{{body}}} {value!r}"


class KubeExporter:
    """Serves the three exporters' metrics on one port, a path per exporter (PATHS)."""

    def __init__(
        self,
        namespace: str,
        deployment: str,
        pods: Sequence[Pod],
        keda_values: Mapping[str, Callable[[], float]],
    ) -> None:
        self.namespace = namespace
        self.deployment = deployment
        self.pods = tuple(pods)
        self.keda_values = dict(keda_values)
        self.generation = 3
        self.restarts = dict.fromkeys((pod.name for pod in self.pods), 0)
        self.last_reason: dict[str, str] = {}
        self.port = free_port()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- what a test can make happen -------------------------------------------------------

    def rollout(self) -> None:
        """A new pod template: the Deployment's generation moves, its replica count does not."""
        with self._lock:
            self.generation += 1

    def oom_kill(self, pod: str) -> None:
        """The pod's container was OOM-killed and restarted."""
        with self._lock:
            self.restarts[pod] += 1
            self.last_reason[pod] = "OOMKilled"

    # -- exposition ------------------------------------------------------------------------

    def kube_state_metrics(self) -> Iterator[str]:
        """kube-state-metrics: Deployment, HPA and pod container series."""
        deploy = {"namespace": self.namespace, "deployment": self.deployment}
        hpa = {
            "namespace": self.namespace,
            "horizontalpodautoscaler": f"keda-hpa-{self.deployment}",
        }
        replicas = len(self.pods)
        yield _line("kube_deployment_status_replicas", deploy, replicas)
        yield _line("kube_deployment_status_replicas_available", deploy, replicas)
        yield _line("kube_deployment_spec_replicas", deploy, replicas)
        yield _line("kube_deployment_status_observed_generation", deploy, self.generation)
        yield _line("kube_horizontalpodautoscaler_status_current_replicas", hpa, replicas)
        yield _line("kube_horizontalpodautoscaler_status_desired_replicas", hpa, replicas)
        yield _line("kube_horizontalpodautoscaler_spec_max_replicas", hpa, MAX_REPLICAS)
        for pod in self.pods:
            labels = {"namespace": self.namespace, "pod": pod.name, "uid": pod.uid}
            container = {**labels, "container": CONTAINER}
            yield _line(
                "kube_pod_container_status_restarts_total", container, self.restarts[pod.name]
            )
            if pod.name in self.last_reason:
                reason = {**container, "reason": self.last_reason[pod.name]}
                yield _line("kube_pod_container_status_last_terminated_reason", reason, 1)
            resource = {**container, "node": "node-1"}
            cpu = {**resource, "resource": "cpu", "unit": "core"}
            memory = {**resource, "resource": "memory", "unit": "byte"}
            yield _line("kube_pod_container_resource_requests", cpu, CPU_REQUEST)
            yield _line("kube_pod_container_resource_limits", memory, MEMORY_LIMIT)

    def cadvisor(self) -> Iterator[str]:
        """The kubelet's cAdvisor: the worker processes' CPU seconds and resident memory."""
        for pod in self.pods:
            labels = {
                "namespace": self.namespace,
                "pod": pod.name,
                "container": CONTAINER,
                "id": f"/kubepods/burstable/pod{pod.uid}/{pod.pid}",
                "image": "ghcr.io/example/workflow-worker:test",
                "name": f"k8s_{CONTAINER}_{pod.name}",
            }
            yield _line("container_cpu_usage_seconds_total", labels, tree_cpu([pod.pid]))
            yield _line("container_memory_working_set_bytes", labels, rss_kib(pod.pid) * 1024.0)

    def keda(self) -> Iterator[str]:
        """The KEDA operator: each trigger's last value and its error counter (never failing)."""
        for index, (metric, read) in enumerate(self.keda_values.items()):
            labels = {
                "namespace": self.namespace,
                "metric": metric,
                "scaledObject": self.deployment,
                "scaler": "redisScaler",
                "triggerIndex": str(index),
                "type": "scaledobject",
            }
            yield _line("keda_scaler_metrics_value", labels, read())
            yield _line("keda_scaler_detail_errors_total", labels, 0.0)

    def render(self, path: str) -> str | None:
        """The exposition text served at `path`, or None for an unknown path."""
        sources = {
            PATHS["kube-state-metrics"]: self.kube_state_metrics,
            PATHS["kubelet"]: self.cadvisor,
            PATHS["keda-operator"]: self.keda,
        }
        source = sources.get(path)
        if source is None:
            return None
        with self._lock:
            return "\n".join(source()) + "\n"

    # -- serving ---------------------------------------------------------------------------

    def scrape_configs(self) -> list[dict[str, Any]]:
        """Prometheus jobs as a cluster would have them: kube-state-metrics and the kubelet keep
        their series' namespace (honor_labels), KEDA's ServiceMonitor adds its own, so the
        ScaledObject's namespace arrives as exported_namespace."""
        target = f"127.0.0.1:{self.port}"
        return [
            {
                "job_name": "kube-state-metrics",
                "honor_labels": True,
                "metrics_path": PATHS["kube-state-metrics"],
                "static_configs": [{"targets": [target]}],
            },
            {
                "job_name": "kubelet",
                "honor_labels": True,
                "metrics_path": PATHS["kubelet"],
                "static_configs": [{"targets": [target]}],
            },
            {
                "job_name": "keda-operator",
                "metrics_path": PATHS["keda-operator"],
                "static_configs": [{"targets": [target], "labels": {"namespace": "keda"}}],
            },
        ]

    def start(self) -> None:
        """Serve on 127.0.0.1:port from a daemon thread."""
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                text = exporter.render(self.path)
                body = (text or "not found\n").encode()
                self.send_response(200 if text is not None else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
