"""A real Prometheus scraping two real worker processes while jobs flow.

Every dashboard query returns data, the numbers agree with what the test enqueued, every rule
evaluates on the live data, and the key panels are drawn to artifacts/ as a PNG. The Kubernetes and
KEDA panels read series of a stand-in exporter (tests/kube_exporter.py) with the real names and
labels, since no cluster runs here; its CPU and memory are the worker processes' own.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from matplotlib.figure import Figure

from dashboards import generate, kube
from dashboards import queries as q
from tests.kube_exporter import KubeExporter, Pod
from tests.prom_helpers import (
    ROOT,
    Prometheus,
    PromQueryError,
    Sample,
    Target,
    finite,
    get_text,
    interpolate,
    load_rules,
    metric_total,
    values,
)
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.local.devstack import RedisServer, free_port

pytestmark = pytest.mark.slow

QUEUE = "it:queue"
NAMESPACE = "test"
JOBS = 600
WORKERS = 2
CONCURRENCY = 5
CAPACITY = WORKERS * CONCURRENCY
DEPLOYMENT = "workflow-worker"
# Pod names as a Deployment's ReplicaSet makes them: <deployment>-<pod-template-hash>-<suffix>.
PODS = (f"{DEPLOYMENT}-6b8f9c7d45-x2kq9", f"{DEPLOYMENT}-6b8f9c7d45-b7m4z")
WORKFLOW = "sleep"
ARTIFACT = ROOT / "artifacts" / "workflow-worker-panels.png"
SRE_ARTIFACT = ROOT / "artifacts" / "workflow-worker-sre-panels.png"


@dataclass(frozen=True)
class LiveRun:
    """Prometheus, the workers it scrapes, and when the jobs were enqueued and finished."""

    prom: Prometheus
    workers: list[WorkerProcess]
    kube: KubeExporter
    start: float
    end: float

    @property
    def window(self) -> str:
        """A range covering the whole run, standing in for Grafana's $__rate_interval."""
        return f"{math.ceil(self.end - self.start) + 10}s"

    def query(self, expr: str) -> list[Sample]:
        """Instant query at the end of the run."""
        return self.prom.query(expr, at=self.end)

    def one(self, expr: str) -> float:
        """The single value of an instant query at the end of the run."""
        result = values(self.query(expr))
        assert len(result) == 1, (expr, result)
        return result[0]


def substitute(expr: str, window: str) -> str:
    """A panel query with Grafana's variables replaced the way Grafana would."""
    variables = {"namespace": [NAMESPACE], "queue": [QUEUE], "deployment": [DEPLOYMENT]}
    return interpolate(expr, {**variables, "workflow": ".*"}, window)


@dataclass(frozen=True)
class WorkerProcess:
    """A `python -m worker run` subprocess and the port of its /metrics."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until /readyz answers 200 (Redis reachable, taking jobs)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.log_path.read_text()}")
            with contextlib.suppress(OSError, PromQueryError):
                get_text(self.port, "/readyz")
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"worker not ready:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM (the worker drains), then SIGKILL after 15 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _spawn_worker(redis_url: str, log_path: Path) -> WorkerProcess:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "REDIS_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        REDIS_URL=redis_url,
        WORKER_QUEUE=QUEUE,
        WORKER_HTTP_PORT=str(port),
        WORKER_BENCHMARK_MODE="1",
        WORKER_BENCHMARK_MIN_SECONDS="0.05",
        WORKER_BENCHMARK_MAX_SECONDS="0.3",
        WORKER_CONCURRENCY=str(CONCURRENCY),
        WORKER_LOG_FORMAT="json",
        WORKER_SHUTDOWN_TIMEOUT="5",
        # Fleet-wide gauges refreshed faster than the 1 s scrape.
        WORKER_METRICS_INTERVAL="0.2",
    )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workflow_worker", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    return WorkerProcess(proc, port, log_path)


def _enqueue(redis_url: str) -> None:
    now = time.time()
    jobs = [json.dumps({"workflow": "sleep", "payload": {}, "enqueued_at": now})] * JOBS
    with redis.Redis.from_url(redis_url) as client:
        # One malformed message first: it is dead-lettered without running (status "dead").
        client.lpush(QUEUE, "not json", *jobs)


def _wait_until_done(prom: Prometheus) -> None:
    sel = f'queue="{QUEUE}"'
    prom.wait_for(
        f'sum(workflow_jobs_total{{{sel}, status="success"}})',
        lambda r: values(r) == [JOBS],
        timeout=45,
        what=f"{JOBS} successes seen by Prometheus",
    )
    prom.wait_for(
        f"max(workflow_jobs_queued{{{sel}}}) + max(workflow_jobs_inflight{{{sel}}})"
        f" + sum(workflow_jobs_active{{{sel}}})",
        lambda r: values(r) == [0],
        timeout=10,
        what="queue, in-flight and active back to 0",
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    """Redis, two benchmark-mode workers and Prometheus; JOBS jobs enqueued and all finished."""
    base = tmp_path_factory.mktemp("prometheus-integration")
    with contextlib.ExitStack() as stack:
        server = RedisServer(base / "redis")
        stack.callback(server.stop)
        server.start()
        workers = []
        for i in range(WORKERS):
            worker = _spawn_worker(server.url, base / f"worker-{i}.log")
            stack.callback(worker.stop)
            workers.append(worker)
        targets = [
            Target(f"127.0.0.1:{w.port}", {"namespace": NAMESPACE, "pod": pod})
            for pod, w in zip(PODS, workers, strict=True)
        ]
        exporter = _kube_exporter(server.url, workers)
        stack.callback(exporter.stop)
        exporter.start()
        prom = Prometheus(base / "prometheus", targets, extra_jobs=exporter.scrape_configs())
        stack.callback(prom.stop)
        prom.start()
        for worker in workers:
            worker.wait_ready()
        # The first scrape comes ~5 s after start (target updates are batched every 5 s).
        prom.wait_for(
            f'count(workflow_jobs_capacity{{queue="{QUEUE}"}})'
            " + count(kube_deployment_status_observed_generation)"
            " + count(keda_scaler_metrics_value)",
            lambda r: values(r) == [WORKERS + 1 + 2],
            timeout=20,
            what="both workers and the Kubernetes/KEDA exporter scraped",
        )
        start = time.time()
        # A rollout and an OOM kill during the run, for the annotation and the restart panel.
        exporter.rollout()
        exporter.oom_kill(PODS[1])
        _enqueue(server.url)
        _wait_until_done(prom)
        yield LiveRun(prom, workers, exporter, start, time.time())


def _kube_exporter(redis_url: str, workers: list[WorkerProcess]) -> KubeExporter:
    client = redis.Redis.from_url(redis_url)
    keys = QueueKeys.for_queue(QUEUE)
    return KubeExporter(
        NAMESPACE,
        DEPLOYMENT,
        [
            Pod(name, w.proc.pid, f"uid-{i}")
            for i, (name, w) in enumerate(zip(PODS, workers, strict=True))
        ],
        {
            "s0-redis-it-queue": lambda: float(client.llen(keys.queue)),
            "s1-redis-it-queue-processing": lambda: float(client.hlen(keys.processing)),
        },
    )


def _panel_targets() -> list[tuple[str, str, str]]:
    model = generate.build()
    return [
        (panel["title"], target["refId"], target["expr"])
        for panel in model["panels"]
        for target in panel.get("targets", [])
    ]


def test_every_panel_query_returns_data(live: LiveRun) -> None:
    """Every dashboard query, the Kubernetes and KEDA ones included, returns finite values; the
    stall alert's series stays empty."""
    queries = _panel_targets()
    assert len({title for title, _, _ in queries}) == 20
    for title, ref_id, expr in queries:
        result = live.query(substitute(expr, live.window))
        if expr.startswith("ALERTS{"):
            assert result == [], f"{title} {ref_id}: alert fires on a healthy queue: {result}"
            continue
        assert finite(result), f"{title} {ref_id}: no data for {substitute(expr, live.window)}"


def _variable(name: str) -> dict[str, Any]:
    variables: dict[str, dict[str, Any]] = {
        var["name"]: var for var in generate.build()["templating"]["list"]
    }
    return variables[name]


def _label_values_query(name: str) -> tuple[str, str]:
    """(label, match[]) of a `label_values(match, label)` variable, variables substituted."""
    query = substitute(_variable(name)["query"], "1m")
    found = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
    assert found, query
    return found.group(2), found.group(1)


def test_dashboard_variables_list_the_scraped_values(live: LiveRun) -> None:
    """The variables offer the scraped namespace, queue and workflow, and the Deployment cut from
    the worker pods' names by the variable's regex, as Grafana would apply it."""
    assert live.prom.label_values(*_label_values_query("namespace")) == [NAMESPACE]
    assert live.prom.label_values(*_label_values_query("queue")) == [QUEUE]
    # The malformed message counts under the workflow "_unknown".
    assert live.prom.label_values(*_label_values_query("workflow")) == ["_unknown", WORKFLOW]
    pods = live.prom.label_values(*_label_values_query("deployment"))
    assert sorted(pods) == sorted(PODS)
    pattern = re.compile(_variable("deployment")["regex"].strip("/"))
    assert {m.group(1) for pod in pods if (m := pattern.match(pod))} == {DEPLOYMENT}


def test_kubernetes_panels_follow_the_cluster(live: LiveRun) -> None:
    """Replicas, KEDA values (read with the namespace the scrape renamed), CPU, memory, the OOM
    kill and the rollout annotation show what the stand-in cluster reported during the run."""
    w = live.window

    def by(expr: str, label: str) -> dict[str, float]:
        result = live.query(substitute(expr, w))
        return {s["metric"][label]: v for s, v in zip(result, values(result), strict=True)}

    assert by(kube.REPLICAS_CURRENT, "deployment") == {DEPLOYMENT: WORKERS}
    assert by(kube.REPLICAS_MAX, "deployment") == {DEPLOYMENT: 10}
    renamed = live.query("count by (namespace, exported_namespace) (keda_scaler_metrics_value)")
    assert [s["metric"] for s in renamed] == [
        {"namespace": "keda", "exported_namespace": NAMESPACE}
    ]
    keda = live.query(substitute(kube.KEDA_VALUE, w))
    assert {s["metric"]["namespace"] for s in keda} == {NAMESPACE}, keda
    assert {s["metric"]["metric"] for s in keda} == set(live.kube.keda_values)
    peak = f"max_over_time(({substitute(kube.KEDA_VALUE, w)})[{w}:1s])"
    assert by(peak, "metric")["s0-redis-it-queue"] >= JOBS / 2
    cpu = by(kube.CPU, "pod")
    assert set(cpu) == set(PODS)
    assert all(0 < used < 2 for used in cpu.values()), cpu
    assert all(20e6 < rss < 500e6 for rss in by(kube.MEMORY, "pod").values())
    oom = by(kube.OOM_KILLS, "pod")
    assert oom[PODS[0]] == 0
    assert oom[PODS[1]] > 0
    deploys = live.query(substitute(kube.DEPLOYS, w))
    assert [s["metric"] for s in deploys] == [{"namespace": NAMESPACE, "deployment": DEPLOYMENT}]


def test_annotation_queries_run(live: LiveRun) -> None:
    """Both annotation queries run; the alert one is empty on a healthy run, the rollout one
    marks the rollout the stand-in cluster made."""
    annotations = generate.build()["annotations"]["list"]
    results = {a["name"]: live.query(substitute(a["expr"], live.window)) for a in annotations}
    assert results["workflow-worker alerts"] == []
    assert len(results[generate.DEPLOY_ANNOTATION]) == 1


def test_counters_agree_with_what_was_enqueued(live: LiveRun) -> None:
    """Prometheus and the workers' own /metrics count exactly the jobs the test enqueued."""
    assert live.one('sum(workflow_jobs_total{status="success"})') == JOBS
    assert live.one('sum(workflow_jobs_total{status="dead"})') == 1
    assert live.one("sum(workflow_jobs_total)") == JOBS + 1
    assert live.one("sum(workflow_job_duration_seconds_count)") == JOBS
    assert live.one("sum(workflow_job_wait_seconds_count)") == JOBS
    per_worker = [
        metric_total(get_text(w.port, "/metrics"), "workflow_jobs_total", status="success")
        for w in live.workers
    ]
    assert sum(per_worker) == JOBS
    assert all(count > 0 for count in per_worker), f"one worker did nothing: {per_worker}"
    by_pod = live.query("sum by (pod) (workflow_jobs_total)")
    assert sorted(s["metric"]["pod"] for s in by_pod) == sorted(PODS)


def test_gauges_show_the_queue_drained_and_the_workers_full(live: LiveRun) -> None:
    """The queue drained to 0, active reached capacity meanwhile, one dead letter remains."""
    w = live.window
    assert live.one(substitute(q.QUEUED, w)) == 0
    assert live.one(substitute(q.INFLIGHT, w)) == 0
    assert live.one(substitute(q.ACTIVE, w)) == 0
    assert live.one(substitute(q.CAPACITY, w)) == CAPACITY
    assert live.one(substitute(q.DEAD_LETTER, w)) == 1
    assert live.one(f"max_over_time(sum(workflow_jobs_active)[{w}:1s])") == CAPACITY
    assert live.one(f"max_over_time(max(workflow_jobs_queued)[{w}:1s])") >= JOBS / 2
    assert 0.99 <= live.one(substitute(q.SUCCESS_RATIO, w)) <= 1


def test_latency_percentiles_match_the_benchmark_sleeps(live: LiveRun) -> None:
    """Duration percentiles fall inside the 0.05-0.3 s benchmark sleep range (bucket accuracy)."""
    quantiles = {legend.rsplit(" ", 1)[1]: expr for legend, expr in q.duration_quantiles()}
    p50 = live.one(substitute(quantiles["p50"], live.window))
    p99 = live.one(substitute(quantiles["p99"], live.window))
    assert 0.05 <= p50 <= 0.3
    assert p50 <= p99 <= 0.5


def _wait_rules_evaluated(prom: Prometheus, after: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        rules = [rule for group in prom.rule_groups() for rule in group["rules"]]
        fresh = [r for r in rules if _timestamp(r["lastEvaluation"]) > after]
        if len(fresh) == len(rules) or time.monotonic() > deadline:
            return rules
        time.sleep(0.25)


def _timestamp(rfc3339: str) -> float:
    """Seconds since the epoch of Prometheus' RFC 3339 time (nanoseconds cut to microseconds)."""
    match = re.fullmatch(r"([^.]+?)(\.\d{1,6})?\d*(Z|[+-]\d\d:\d\d)", rfc3339)
    assert match, rfc3339
    seconds, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{seconds}{fraction or ''}{zone}").timestamp()


def test_every_rule_evaluates_on_the_live_data(live: LiveRun) -> None:
    """Each recording and alerting expression runs without error; no alert fires on this run."""
    source = load_rules()
    for rule in source:
        live.prom.query(rule["expr"])  # raises PromQueryError on an evaluation error
    rules = _wait_rules_evaluated(live.prom, live.start)
    assert len(rules) == len(source)
    for rule in rules:
        assert rule["health"] == "ok", rule
        assert not rule.get("lastError"), rule
        assert rule.get("state", "inactive") != "firing", rule
    recorded = {r["name"]: live.prom.query(r["name"]) for r in rules if r["type"] == "recording"}
    assert all(recorded.values()), f"recording rules without data: {recorded}"


def _legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def _plot(ax: Any, live: LiveRun, title: str, unit: str, series: list[tuple[str, str]]) -> None:
    for legend, expr in series:
        expr = substitute(expr, "5s")
        for s in live.prom.query_range(expr, live.start - 3, live.end + 3, step=1):
            xs = [float(t) - live.start for t, _ in s["values"]]
            ys = [float(v) for _, v in s["values"]]
            ax.plot(xs, ys, label=_legend(legend, s["metric"]))
    ax.set_title(title)
    ax.set_xlabel("seconds since enqueue")
    ax.set_ylabel(unit)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def draw_panels(live: LiveRun, path: Path) -> Path:
    """Draw queue depth, active vs capacity, latency percentiles and throughput to a PNG."""
    fig = Figure(figsize=(14, 9), layout="constrained")
    axes = fig.subplots(2, 2)
    _plot(axes[0][0], live, "Queue depth: queued and in flight", "jobs",
          [("queued", q.QUEUED), ("in flight", q.INFLIGHT)])  # fmt: skip
    _plot(axes[0][1], live, "Active workflows rising to capacity", "jobs",
          [("active", q.ACTIVE), ("capacity", q.CAPACITY), ("{{pod}}", q.POD_ACTIVE)])  # fmt: skip
    _plot(axes[1][0], live, "Job duration p50 / p90 / p99", "seconds", q.duration_quantiles())
    _plot(axes[1][1], live, "Throughput by outcome", "jobs/s",
          [("{{status}}", q.THROUGHPUT_BY_STATUS)])  # fmt: skip
    fig.suptitle(f"workflow-worker: {JOBS} jobs, {WORKERS} workers x {CONCURRENCY} (live data)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path


def draw_sre_panels(live: LiveRun, path: Path) -> Path:
    """Draw the KEDA value, CPU, memory and event-loop lag panels to a PNG."""
    fig = Figure(figsize=(14, 9), layout="constrained")
    axes = fig.subplots(2, 2)
    _plot(axes[0][0], live, "KEDA scaler: metric value (stand-in exporter, from Redis)", "jobs",
          [("{{metric}}", kube.KEDA_VALUE), ("queued (worker)", q.QUEUED)])  # fmt: skip
    _plot(axes[0][1], live, "CPU per container (the worker processes)", "cores",
          [("{{pod}}", kube.CPU)])  # fmt: skip
    _plot(axes[1][0], live, "Memory working set (the worker processes)", "bytes",
          [("{{pod}}", kube.MEMORY)])  # fmt: skip
    _plot(axes[1][1], live, "Event-loop lag", "seconds", [("{{pod}}", q.LOOP_LAG)])
    fig.suptitle(f"workflow-worker SRE panels: {JOBS} jobs, {WORKERS} workers (live data)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path


def test_key_panels_are_drawn_to_a_png(live: LiveRun) -> None:
    """The key panels are rendered from the live Prometheus data into artifacts/ as PNGs."""
    for path in (draw_panels(live, ARTIFACT), draw_sre_panels(live, SRE_ARTIFACT)):
        print(f"\npanels drawn from live Prometheus data: {path}")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000
