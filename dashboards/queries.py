"""PromQL of the dashboard panels, kept apart from the layout so tests and docs can read it.

Fleet-wide gauges (queued, inflight, delayed, dead_letter, oldest age) are reported identically by
every worker and are aggregated with `max by (queue)`; per-process gauges (active, capacity) are
summed. Every range uses `$__rate_interval`. Series that may not exist yet (a status no job has had)
fall back to 0 per queue, so a panel shows 0 instead of "No data".
"""

from __future__ import annotations

from typing import Final

SEL: Final = 'namespace=~"$namespace", queue=~"$queue"'
RATE: Final = "$__rate_interval"
PCTS: Final = (0.5, 0.9, 0.99)

STALL_ALERT: Final = "WorkflowQueueStalled"
WAIT_ALERT: Final = "WorkflowJobsWaitingTooLong"
SATURATION_ALERT: Final = "WorkflowWorkersSaturated"
FAILURE_ALERT: Final = "WorkflowHighFailureRate"


def fleet(metric: str) -> str:
    """A fleet-wide gauge per queue: every worker reports the same value, so take the max."""
    return f"max by (queue) ({metric}{{{SEL}}})"


def per_process(metric: str, by: str = "queue") -> str:
    """A per-process gauge summed over the workers."""
    return f"sum by ({by}) ({metric}{{{SEL}}})"


def jobs_rate(status: str | None = None, by: str = "queue") -> str:
    """Claimed messages per second, optionally only those ending with `status` (a regex)."""
    matcher = SEL if status is None else f'{SEL}, status=~"{status}"'
    return f"sum by ({by}) (rate(workflow_jobs_total{{{matcher}}}[{RATE}]))"


def or_zero(expr: str) -> str:
    """`expr` per queue, or 0 for a queue whose workers never produced such a series."""
    return f"(({expr}) or on (queue) (0 * {per_process('workflow_jobs_capacity')}))"


def quantile(q: float, histogram: str) -> str:
    """The q-quantile of a histogram over all selected queues and workers."""
    return f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket{{{SEL}}}[{RATE}])))"


ACTIVE: Final = per_process("workflow_jobs_active")
CAPACITY: Final = per_process("workflow_jobs_capacity")
QUEUED: Final = fleet("workflow_jobs_queued")
INFLIGHT: Final = fleet("workflow_jobs_inflight")
DELAYED: Final = fleet("workflow_jobs_delayed")
DEAD_LETTER: Final = fleet("workflow_jobs_dead_letter")
OLDEST_AGE: Final = fleet("workflow_queue_oldest_age_seconds")

SUCCESS_RATIO: Final = f"{or_zero(jobs_rate('success'))}\n/ {jobs_rate('success|failure|dead')}"
THROUGHPUT_BY_STATUS: Final = jobs_rate(by="status")
POD_ACTIVE: Final = per_process("workflow_jobs_active", by="pod")
POD_THROUGHPUT: Final = jobs_rate(by="pod")
RETRIED_RATE: Final = or_zero(jobs_rate("retried"))
DEAD_RATE: Final = or_zero(jobs_rate("failure|dead"))
SATURATION: Final = f"{ACTIVE}\n/ {CAPACITY}"
# The alert's condition with the dashboard's window: jobs waiting on a queue where nothing
# finished during the last $__rate_interval; 0 while jobs flow or nothing waits.
STALLED_JOBS: Final = (
    f"({QUEUED} > 0\nunless on (queue) {jobs_rate()} > 0)\nor on (queue) (0 * {QUEUED})"
)
STALL_FIRING: Final = f'ALERTS{{alertname="{STALL_ALERT}", alertstate="firing", {SEL}}}'
ALERT_ANNOTATIONS: Final = f'ALERTS{{alertname=~"Workflow.+", alertstate="firing", {SEL}}}'


def duration_quantiles() -> list[tuple[str, str]]:
    """(legend, expr) of the run-time percentiles."""
    return [(f"p{round(q * 100)}", quantile(q, "workflow_job_duration_seconds")) for q in PCTS]


def wait_quantiles() -> list[tuple[str, str]]:
    """(legend, expr) of the enqueue-to-start percentiles."""
    return [(f"p{round(q * 100)} wait", quantile(q, "workflow_job_wait_seconds")) for q in PCTS]
