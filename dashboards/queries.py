"""PromQL of the worker panels, kept apart from the layout so tests and docs can read it.

Every query is grouped by `namespace` and `queue` (or by `namespace` and `pod`), so selecting
several namespaces never adds one environment's queue to another's. Fleet-wide gauges (queued,
inflight, delayed, dead_letter, oldest age) are reported identically by every worker and are
aggregated with `max`; per-process gauges (active, capacity) are summed. Percentiles are computed
per namespace and queue. Every range uses `$__rate_interval`. Series that may not exist yet (a
status no job has had) fall back to 0 per queue, so a panel shows 0 instead of "No data".
"""

from __future__ import annotations

from typing import Final

SEL: Final = 'namespace=~"$namespace", queue=~"$queue"'
# Metrics that carry a `workflow` label (docs/contract.md) also honour the workflow variable.
SEL_WF: Final = f'{SEL}, workflow=~"$workflow"'
BY: Final = "namespace, queue"
RATE: Final = "$__rate_interval"
PCTS: Final = (0.5, 0.9, 0.99)

STALL_ALERT: Final = "WorkflowQueueStalled"
WAIT_ALERT: Final = "WorkflowJobsWaitingTooLong"
SATURATION_ALERT: Final = "WorkflowWorkersSaturated"
FAILURE_ALERT: Final = "WorkflowHighFailureRate"
FAILURE_BURN_ALERT: Final = "WorkflowJobFailureBudgetBurn"
WAIT_BURN_ALERT: Final = "WorkflowQueueWaitBudgetBurn"
REDIS_ALERT: Final = "WorkflowRedisDisconnected"

# The SLOs of the burn-rate alerts (dashboards/workflow-worker.rules.yml states the same numbers;
# a test compares them): at most 1% of finished jobs fail, at most 1% of jobs wait longer than
# WAIT_SLO_SECONDS before they start.
FAILURE_BUDGET: Final = 0.01
WAIT_BUDGET: Final = 0.01
WAIT_SLO_SECONDS: Final = 60
# prometheus_client writes bucket bounds as Go floats: 60 -> "60.0".
WAIT_SLO_LE: Final = f"{float(WAIT_SLO_SECONDS)}"
# Burn rates of the Google SRE workbook's page alerts: 2% of a 30-day budget in 1 hour, 5% in 6.
BURN_FAST: Final = 14.4
BURN_SLOW: Final = 6.0


def legend(*labels: str) -> str:
    """A legend such as `{{namespace}}/{{queue}}`."""
    return "/".join(f"{{{{{label}}}}}" for label in labels)


NSQ: Final = legend("namespace", "queue")
NSPOD: Final = legend("namespace", "pod")


def fleet(metric: str) -> str:
    """A fleet-wide gauge per queue: every worker reports the same value, so take the max."""
    return f"max by ({BY}) ({metric}{{{SEL}}})"


def per_process(metric: str, by: str = BY) -> str:
    """A per-process gauge summed over the workers."""
    return f"sum by ({by}) ({metric}{{{SEL}}})"


def counter_rate(metric: str, by: str = BY, sel: str = SEL, extra: str = "") -> str:
    """Per-second rate of a worker counter, summed `by` the given labels."""
    matcher = f"{sel}, {extra}" if extra else sel
    return f"sum by ({by}) (rate({metric}{{{matcher}}}[{RATE}]))"


def jobs_rate(status: str | None = None, by: str = BY, sel: str = SEL_WF) -> str:
    """Claimed messages per second, optionally only those ending with `status` (a regex)."""
    extra = "" if status is None else f'status=~"{status}"'
    return counter_rate("workflow_jobs_total", by, sel, extra)


def or_zero(expr: str) -> str:
    """`expr` per queue, or 0 for a queue whose workers never produced such a series."""
    return f"(({expr}) or on ({BY}) (0 * {per_process('workflow_jobs_capacity')}))"


def quantile(q: float, histogram: str) -> str:
    """The q-quantile of a histogram per namespace and queue, over the selected workflows."""
    return (
        f"histogram_quantile({q}, sum by ({BY}, le) (rate({histogram}_bucket{{{SEL_WF}}}[{RATE}])))"
    )


ACTIVE: Final = per_process("workflow_jobs_active")
CAPACITY: Final = per_process("workflow_jobs_capacity")
QUEUED: Final = fleet("workflow_jobs_queued")
INFLIGHT: Final = fleet("workflow_jobs_inflight")
DELAYED: Final = fleet("workflow_jobs_delayed")
DEAD_LETTER: Final = fleet("workflow_jobs_dead_letter")
OLDEST_AGE: Final = fleet("workflow_queue_oldest_age_seconds")

FINISHED: Final = jobs_rate("success|failure|dead")
SUCCESS_RATIO: Final = f"{or_zero(jobs_rate('success'))}\n/ {FINISHED}"
THROUGHPUT_BY_STATUS: Final = jobs_rate(by=f"{BY}, status")
POD_ACTIVE: Final = per_process("workflow_jobs_active", by="namespace, pod")
POD_THROUGHPUT: Final = jobs_rate(by="namespace, pod")
RETRIED_RATE: Final = or_zero(jobs_rate("retried"))
DEAD_RATE: Final = or_zero(jobs_rate("failure|dead"))
SATURATION: Final = f"{ACTIVE}\n/ {CAPACITY}"
# The alert's condition with the dashboard's window: jobs waiting on a queue where nothing
# finished during the last $__rate_interval; 0 while jobs flow or nothing waits. Every workflow
# counts here, whatever the workflow variable says: a queue is stalled when nothing finishes.
STALLED_JOBS: Final = (
    f"({QUEUED} > 0\nunless on ({BY}) {jobs_rate(sel=SEL)} > 0)\nor on ({BY}) (0 * {QUEUED})"
)
STALL_FIRING: Final = f'ALERTS{{alertname="{STALL_ALERT}", alertstate="firing", {SEL}}}'
# Alerts about a deployment (replicas, KEDA) carry no queue label: `|` lets them through.
ALERT_ANNOTATIONS: Final = (
    'ALERTS{alertname=~"Workflow.+", alertstate="firing", '
    'namespace=~"$namespace", queue=~"$queue|"}'
)

# Error-budget burn rate over the dashboard's window: 1 spends the budget in exactly the SLO
# period, the alerts page at BURN_FAST (1h) and BURN_SLOW (6h).
FAILURE_BURN: Final = f"{or_zero(jobs_rate('failure|dead'))}\n/ {FINISHED}\n/ {FAILURE_BUDGET}"
_WAIT_FAST: Final = counter_rate(
    "workflow_job_wait_seconds_bucket", sel=SEL_WF, extra=f'le="{WAIT_SLO_LE}"'
)
_WAIT_ALL: Final = counter_rate("workflow_job_wait_seconds_count", sel=SEL_WF)
WAIT_BURN: Final = f"(1 - {_WAIT_FAST}\n/ {_WAIT_ALL})\n/ {WAIT_BUDGET}"

# Worker runtime: the event loop, Redis, requeues and leases, rate limits.
LOOP_LAG: Final = f"max by (namespace, pod) (workflow_event_loop_lag_seconds{{{SEL}}})"
# Seconds per second the loop was held by one task, by the job's workflow (_none: not a job).
LOOP_BLOCKED: Final = counter_rate(
    "workflow_event_loop_blocked_seconds_total", f"{BY}, workflow", SEL_WF
)
REDIS_DISCONNECTED: Final = f"sum by ({BY}) (1 - workflow_redis_connected{{{SEL}}})"
REDIS_ERRORS: Final = or_zero(counter_rate("workflow_redis_errors_total", f"{BY}, operation"))
REQUEUED: Final = counter_rate("workflow_jobs_requeued_total", f"{BY}, reason")
REDELIVERED: Final = counter_rate("workflow_redeliveries_total")
DUPLICATES: Final = counter_rate("workflow_duplicate_completions_total")
# workflow_leases_lost_total has no queue label: keep the pods that serve a selected queue.
LEASES_LOST: Final = (
    'sum by (namespace, pod) (rate(workflow_leases_lost_total{namespace=~"$namespace"}'
    f"[{RATE}]))\nand on (namespace, pod) {POD_ACTIVE}"
)
RATE_LIMITED: Final = or_zero(
    counter_rate("workflow_jobs_rate_limited_total", f"{BY}, workflow", SEL_WF)
)


def duration_quantiles() -> list[tuple[str, str]]:
    """(legend, expr) of the run-time percentiles."""
    return [
        (f"{NSQ} p{round(q * 100)}", quantile(q, "workflow_job_duration_seconds")) for q in PCTS
    ]


def wait_quantiles() -> list[tuple[str, str]]:
    """(legend, expr) of the enqueue-to-start percentiles."""
    return [
        (f"{NSQ} p{round(q * 100)} wait", quantile(q, "workflow_job_wait_seconds")) for q in PCTS
    ]
