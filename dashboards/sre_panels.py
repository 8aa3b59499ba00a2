"""The panels an SRE opens next: error budgets, the worker's runtime, Kubernetes and KEDA.

Each row is a tuple of panel functions; a new signal (another worker metric, a Redis exporter
series) is one more target in a panel, or one more function in a row.
"""

from __future__ import annotations

from dashboards import kube as k
from dashboards import queries as q
from dashboards.queries import NSPOD, NSQ, legend
from dashboards.widgets import PanelBuilder, alert_line, dashed, right_axis, series

NSDEP = legend("namespace", "deployment")
NSCONTAINER = legend("namespace", "pod", "container")


def slo_burn() -> PanelBuilder:
    """Error-budget burn rate of the two SLOs, with the page thresholds."""
    panel = series(
        "SLO burn rate: failures and queue wait",
        f"How fast each SLO's error budget burns over $__rate_interval (1 = the whole budget in "
        f"the SLO period). Failures: failed or dead-lettered share of finished jobs, budget "
        f"{q.FAILURE_BUDGET:.0%}. Queue wait: share of started jobs that waited more than "
        f"{q.WAIT_SLO_SECONDS} s, budget {q.WAIT_BUDGET:.0%}. {q.FAILURE_BURN_ALERT} and "
        f"{q.WAIT_BURN_ALERT} page when the 1h and 5m burn both exceed {q.BURN_FAST:g} (red), "
        f"or the 6h and 30m burn both exceed {q.BURN_SLOW:g} (orange).",
        "short",
        [
            (f"{NSQ} failures", q.FAILURE_BURN),
            (f"{NSQ} waits > {q.WAIT_SLO_SECONDS} s", q.WAIT_BURN),
        ],
        span=24,
    )
    return alert_line(panel, q.BURN_SLOW, q.BURN_FAST)


def event_loop() -> PanelBuilder:
    """How late each worker's event loop woke, and which workflows held it."""
    return series(
        "Event-loop lag and blocks",
        "How late each worker's 10 s ticker last woke (workflow_event_loop_lag_seconds), and "
        "the share of time the loop was held by one job, by workflow "
        "(workflow_event_loop_blocked_seconds_total; the worker logs each block with its job "
        "and the line it was stuck on). Seconds mean something blocks the loop (CPU-bound or "
        "synchronous code in a workflow, CPU throttling): every job on that pod stalls.",
        "s",
        [(NSPOD, q.LOOP_LAG), (f"{NSQ} {{{{workflow}}}} blocked s/s", q.LOOP_BLOCKED)],
    )


def redis() -> PanelBuilder:
    """Pods that lost Redis (left) and failed Redis calls (right)."""
    panel = series(
        "Redis: disconnected pods and errors",
        "Left axis: worker processes whose last Redis call failed (1 - workflow_redis_connected); "
        f"{q.REDIS_ALERT} fires when any stays so for 2m. Right axis: failed Redis calls per "
        "second by operation (workflow_redis_errors_total).",
        "short",
        [
            (f"{NSQ} disconnected", q.REDIS_DISCONNECTED),
            (f"{NSQ} {{{{operation}}}} errors/s", q.REDIS_ERRORS),
        ],
    )
    return right_axis(panel, "ops", "B")


def requeues() -> PanelBuilder:
    """Jobs put back, taken back, run twice; leases lost."""
    return series(
        "Requeues, redeliveries and lost leases",
        "Per second: jobs put back unfinished by reason (shutdown = drain deadline, stray_claim), "
        "jobs taken back from workers whose lease expired, completions of a job that had been "
        "taken back (it ran twice), and per pod the times a worker found its lease taken and "
        "dropped its jobs (paused or partitioned for longer than its lease).",
        "ops",
        [
            (f"{NSQ} requeued {{{{reason}}}}", q.REQUEUED),
            (f"{NSQ} redelivered", q.REDELIVERED),
            (f"{NSQ} duplicate completions", q.DUPLICATES),
            (f"{NSPOD} leases lost", q.LEASES_LOST),
        ],
    )


def rate_limited() -> PanelBuilder:
    """Starts put off by fleet-wide limits."""
    return series(
        "Rate-limited starts",
        "Starts put off per second by a fleet-wide rate or concurrency limit, per workflow "
        "(workflow_jobs_rate_limited_total): those jobs wait in the delayed set. Steady values "
        "with a growing queue mean the limit, not the worker count, sets the throughput.",
        "ops",
        [(f"{NSQ} {{{{workflow}}}}", q.RATE_LIMITED)],
    )


def replicas() -> PanelBuilder:
    """Deployment replicas against what the HPA wants and allows."""
    panel = series(
        "Replicas: current, desired, max",
        "kube-state-metrics: the Deployment's replicas and available replicas, and the desired "
        "and maximum replicas of the HPA KEDA made for it (keda-hpa-<deployment>, dashed max). "
        f"{k.HPA_MAX_ALERT} fires when current stays at max for 15m.",
        "short",
        [
            (f"{NSDEP} current", k.REPLICAS_CURRENT),
            (f"{NSDEP} available", k.REPLICAS_AVAILABLE),
            (f"{NSDEP} desired (HPA)", k.REPLICAS_DESIRED),
            (f"{NSDEP} max (HPA)", k.REPLICAS_MAX),
        ],
    )
    return dashed(panel, "D")


def keda_scaler() -> PanelBuilder:
    """What KEDA reads from Redis (left) and its scaler errors (right)."""
    panel = series(
        "KEDA scaler: metric value and errors",
        "Left axis: the value each KEDA trigger last read (keda_scaler_metrics_value: list length "
        "or processing-hash size). Right axis: scaler errors per second "
        f"(keda_scaler_detail_errors_total, KEDA 2.14+); {k.KEDA_ALERT} fires after 10m of "
        "errors. Works whether the scrape kept KEDA's namespace label or renamed it "
        "exported_namespace.",
        "short",
        [
            (legend("namespace", "scaledObject", "metric"), k.KEDA_VALUE),
            (f"{legend('namespace', 'scaledObject')} errors/s", k.KEDA_ERRORS),
        ],
    )
    return right_axis(panel, "ops", "B")


def cpu() -> PanelBuilder:
    """CPU used per container against its request."""
    panel = series(
        "CPU per container",
        "cAdvisor CPU cores used per container of the worker pods, and the container's CPU "
        "request (kube-state-metrics, dashed). An asyncio worker uses one core at most: near 1, "
        "raise concurrency no further and add pods instead.",
        "short",
        [(NSCONTAINER, k.CPU), (f"{NSCONTAINER} request", k.CPU_REQUEST)],
    )
    return dashed(panel, "B")


def memory() -> PanelBuilder:
    """Working set per container against its limit."""
    panel = series(
        "Memory working set",
        "cAdvisor working set per container of the worker pods, and the container's memory "
        "limit (dashed). The kernel OOM-kills the container when the working set reaches it.",
        "bytes",
        [(NSCONTAINER, k.MEMORY), (f"{NSCONTAINER} limit", k.MEMORY_LIMIT)],
    )
    return dashed(panel, "B")


def restarts() -> PanelBuilder:
    """Container restarts, and those that followed an OOM kill."""
    return series(
        "Restarts and OOM kills",
        "kube-state-metrics: container restarts of the worker pods over $__rate_interval, and the "
        "restarts whose last termination reason is OOMKilled. A pod whose container restarts "
        "loses nothing (its claims are taken back after the lease) but delays its jobs.",
        "short",
        [(f"{NSCONTAINER} restarts", k.RESTARTS), (f"{NSCONTAINER} OOM kills", k.OOM_KILLS)],
        span=24,
    )


SLO_PANELS = (slo_burn,)
RUNTIME_PANELS = (event_loop, redis, requeues, rate_limited)
KUBE_PANELS = (replicas, keda_scaler, cpu, memory, restarts)
