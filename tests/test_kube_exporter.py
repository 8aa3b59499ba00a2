"""The stand-in Kubernetes and KEDA exporter serves exactly the series the dashboard expects."""

from __future__ import annotations

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboards import kube
from tests.kube_exporter import PATHS, KubeExporter, Pod
from tests.prom_helpers import get_text


@pytest.fixture
def exporter() -> KubeExporter:
    """An exporter for one "pod" that is this test process, with one KEDA trigger."""
    pod = Pod("workflow-worker-6b8f9c7d45-x2kq9", os.getpid(), "uid-0")
    return KubeExporter("test", "workflow-worker", [pod], {"s0-redis-q": lambda: 4.0})


def _labels_by_metric(exporter: KubeExporter) -> dict[str, set[tuple[str, ...]]]:
    found: dict[str, set[tuple[str, ...]]] = {}
    for path in PATHS.values():
        text = exporter.render(path)
        assert text is not None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found.setdefault(sample.name, set()).add(tuple(sorted(sample.labels)))
    return found


def test_every_external_series_is_served_with_its_documented_labels(
    exporter: KubeExporter,
) -> None:
    """Each series in dashboards/kube.py EXTERNAL is served, with exactly its label names."""
    exporter.oom_kill("workflow-worker-6b8f9c7d45-x2kq9")
    found = _labels_by_metric(exporter)
    assert set(found) == set(kube.EXTERNAL)
    for name, (_, labels) in kube.EXTERNAL.items():
        assert found[name] == {tuple(sorted(labels))}, name


def test_rollout_and_oom_kill_change_the_series(exporter: KubeExporter) -> None:
    """A rollout moves the generation only; an OOM kill adds a restart and its reason."""
    before = exporter.render(PATHS["kube-state-metrics"]) or ""
    exporter.rollout()
    exporter.oom_kill("workflow-worker-6b8f9c7d45-x2kq9")
    after = exporter.render(PATHS["kube-state-metrics"]) or ""
    assert "kube_deployment_status_observed_generation" in before
    assert 'deployment="workflow-worker"} 3' in before
    assert 'deployment="workflow-worker"} 4' in after
    assert 'reason="OOMKilled"} 1' in after
    assert "last_terminated_reason" not in before
    spec = [line for line in after.splitlines() if line.startswith("kube_deployment_spec_replicas")]
    assert spec == [line for line in before.splitlines() if line.startswith("kube_deployment_spec")]


def test_serves_over_http_and_reads_the_process(exporter: KubeExporter) -> None:
    """The HTTP server answers each path; CPU and memory are the process's own, non-zero."""
    exporter.start()
    try:
        text = get_text(exporter.port, PATHS["kubelet"])
        keda = get_text(exporter.port, PATHS["keda-operator"])
    finally:
        exporter.stop()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["container_cpu_usage_seconds_total"] > 0
    assert samples["container_memory_working_set_bytes"] > 1e6
    assert 'keda_scaler_metrics_value{namespace="test"' in keda
    assert keda.count("} 4.0") == 1
