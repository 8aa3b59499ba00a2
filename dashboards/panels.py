"""The ten job and queue panels of the workflow-worker dashboard, in the order the issue lists them.

Each series is one namespace and queue (legend `namespace/queue`), so a multi-namespace selection
shows each environment on its own line.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.models import dashboard as dash_m

from dashboards import queries as q
from dashboards.queries import NSPOD, NSQ
from dashboards.widgets import PanelBuilder, alert_line, right_axis, series, single_stat, thresholds


def active_workflows() -> PanelBuilder:
    """1. Jobs running now, summed over the workers of each namespace and queue."""
    return single_stat(
        "Active workflows",
        "Jobs running right now, summed over the worker processes of each namespace and queue "
        "(workflow_jobs_active).",
        "short",
        [(NSQ, q.ACTIVE)],
    ).thresholds(thresholds((None, "green")))


def queue_depth() -> PanelBuilder:
    """2. Jobs waiting in the list and jobs claimed by a worker."""
    return series(
        "Queue depth: queued and in flight",
        "Queued = length of the Redis list (KEDA trigger 1); in flight = size of the processing "
        "hash (KEDA trigger 2). Fleet-wide gauges, aggregated with max per namespace and queue.",
        "short",
        [(f"{NSQ} queued", q.QUEUED), (f"{NSQ} in flight", q.INFLIGHT)],
    )


def success_rate() -> PanelBuilder:
    """3. Share of finished jobs that succeeded."""
    return single_stat(
        "Success rate",
        "success / (success + failure + dead) over $__rate_interval, per namespace and queue, "
        "for the selected workflows. Retries and cancellations are not finished outcomes. "
        f"{q.FAILURE_ALERT} fires above 10% failures for 10m; {q.FAILURE_BURN_ALERT} pages when "
        "the 1% error budget burns fast.",
        "percentunit",
        [(NSQ, q.SUCCESS_RATIO)],
    ).thresholds(thresholds((None, "red"), (0.9, "orange"), (0.99, "green")))


def throughput_by_outcome() -> PanelBuilder:
    """4. Claimed messages per second by final status."""
    return series(
        "Throughput by outcome",
        "Claimed messages per second by namespace, queue and status: success, failure "
        "(dead-lettered after the last attempt), retried, cancelled, dead (never ran).",
        "ops",
        [(f"{NSQ} {{{{status}}}}", q.THROUGHPUT_BY_STATUS)],
    )


def duration_percentiles() -> PanelBuilder:
    """5. Run time of an attempt."""
    return series(
        "Job duration p50 / p90 / p99",
        "Run time of one attempt (workflow_job_duration_seconds), percentiles per namespace and "
        "queue over the selected workflows.",
        "s",
        q.duration_quantiles(),
    )


def per_pod() -> PanelBuilder:
    """6. Active jobs (left axis) and throughput (right axis) per pod."""
    panel = series(
        "Per pod: active jobs and throughput",
        "Left axis: jobs running per pod. Right axis: messages finished per second per pod. "
        "A pod with active jobs but no throughput is stuck; an uneven split is normal briefly.",
        "short",
        [(f"{NSPOD} active", q.POD_ACTIVE), (f"{NSPOD} jobs/s", q.POD_THROUGHPUT)],
    )
    return right_axis(panel, "ops", "B")


def queue_wait() -> PanelBuilder:
    """7. Enqueue-to-start percentiles and the age of the oldest waiting job."""
    panel = series(
        "Time waiting in the queue",
        "Enqueue-to-start percentiles per namespace and queue of the jobs that started "
        f"(workflow_job_wait_seconds) and the age of the job next in line. {q.WAIT_ALERT} fires "
        "when the oldest job has waited more than 600 s for 5m (dashed line).",
        "s",
        [*q.wait_quantiles(), (f"{NSQ} oldest waiting job", q.OLDEST_AGE)],
    )
    return alert_line(panel, 600)


def retries_and_dead_letters() -> PanelBuilder:
    """8. Retry and dead-letter rates (left axis); retry set and dead list sizes (right axis)."""
    panel = series(
        "Retries and dead letters",
        "Left axis: attempts rescheduled and jobs dead-lettered per second. Right axis: jobs "
        "waiting for a retry ({Q}:delayed) and the dead-letter list length ({Q}:dead).",
        "ops",
        [
            (f"{NSQ} retried/s", q.RETRIED_RATE),
            (f"{NSQ} dead-lettered/s", q.DEAD_RATE),
            (f"{NSQ} awaiting retry", q.DELAYED),
            (f"{NSQ} dead-letter list", q.DEAD_LETTER),
        ],
    )
    return right_axis(panel, "short", "C", "D")


def saturation() -> PanelBuilder:
    """9. Busy slots over all slots."""
    panel = series(
        "Saturation: active / capacity",
        "Share of worker slots busy per namespace and queue (sum of active / sum of capacity). "
        f"{q.SATURATION_ALERT} fires at 90% or more while the queue grows for 15m (dashed line).",
        "percentunit",
        [(NSQ, q.SATURATION)],
    ).max(1)
    return alert_line(panel, 0.9)


def queue_stall() -> PanelBuilder:
    """10. Jobs waiting while nothing finishes, with the stall alert's state."""
    panel = series(
        "Queue stall",
        f"Jobs waiting on a queue where nothing finished in the last $__rate_interval (0 while "
        f"jobs flow). Alert {q.STALL_ALERT}: jobs waiting and no message finished for 10m, held "
        "5m (max by (namespace, queue) (workflow_jobs_queued) > 0 unless on (namespace, queue) "
        "sum by (namespace, queue) (increase(workflow_jobs_total[10m])) > 0). "
        "The second series is 1 while the alert fires.",
        "short",
        [
            (f"{NSQ} stalled jobs", q.STALLED_JOBS),
            (f"{NSQ} {q.STALL_ALERT}", q.STALL_FIRING),
        ],
        span=24,
    )
    return alert_line(panel, 1).color_scheme(
        dash_b.FieldColor().mode(dash_m.FieldColorModeId.THRESHOLDS)
    )


PANELS = (
    active_workflows,
    queue_depth,
    success_rate,
    throughput_by_outcome,
    duration_percentiles,
    per_pod,
    queue_wait,
    retries_and_dead_letters,
    saturation,
    queue_stall,
)
