"""The ten panels of the workflow-worker dashboard, in the order the issue lists them."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dash_m

from dashboards import queries as q

DATASOURCE = dash_m.DataSourceRef(type_val="prometheus", uid="${datasource}")

Target = tuple[str, str]  # (legend, expr)
PanelBuilder = cogbuilder.Builder[dash_m.Panel]


def _targets(targets: list[Target]) -> list[prometheus.Dataquery]:
    return [
        prometheus.Dataquery().ref_id(chr(ord("A") + i)).expr(expr).legend_format(legend).range()
        for i, (legend, expr) in enumerate(targets)
    ]


def _thresholds(*steps: tuple[float | None, str]) -> dash_b.ThresholdsConfig:
    return (
        dash_b.ThresholdsConfig()
        .mode(dash_m.ThresholdsMode.ABSOLUTE)
        .steps([dash_m.Threshold(value=value, color=color) for value, color in steps])
    )


def _series(title: str, description: str, unit: str, targets: list[Target]) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .height(8)
        .span(12)
        .fill_opacity(10)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(common_b.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
    )
    return panel.targets(_targets(targets))  # type: ignore[arg-type]


def _alert_line(panel: timeseries.Panel, value: float) -> timeseries.Panel:
    """Draw the alert threshold as a dashed line."""
    return panel.thresholds(_thresholds((None, "green"), (value, "red"))).thresholds_style(
        common_b.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
    )


def _right_axis(panel: timeseries.Panel, ref_id: str, unit: str) -> timeseries.Panel:
    return panel.override_by_query(
        ref_id,
        [
            dash_m.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
            dash_m.DynamicConfigValue(id_val="unit", value=unit),
        ],
    )


def _stat(title: str, description: str, unit: str, targets: list[Target]) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(8)
        .span(6)
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return panel.targets(_targets(targets))  # type: ignore[arg-type]


def active_workflows() -> PanelBuilder:
    """1. Jobs running now, summed over the workers."""
    return _stat(
        "Active workflows",
        "Jobs running right now, summed over all worker processes (workflow_jobs_active).",
        "short",
        [("{{queue}}", q.ACTIVE)],
    ).thresholds(_thresholds((None, "green")))


def queue_depth() -> PanelBuilder:
    """2. Jobs waiting in the list and jobs claimed by a worker."""
    return _series(
        "Queue depth: queued and in flight",
        "Queued = length of the Redis list (KEDA trigger 1); in flight = size of the processing "
        "hash (KEDA trigger 2). Fleet-wide gauges, aggregated with max.",
        "short",
        [("{{queue}} queued", q.QUEUED), ("{{queue}} in flight", q.INFLIGHT)],
    )


def success_rate() -> PanelBuilder:
    """3. Share of finished jobs that succeeded."""
    return _stat(
        "Success rate",
        "success / (success + failure + dead) over $__rate_interval. Retries and cancellations "
        f"are not finished outcomes. {q.FAILURE_ALERT} fires above 10% failures for 10m.",
        "percentunit",
        [("{{queue}}", q.SUCCESS_RATIO)],
    ).thresholds(_thresholds((None, "red"), (0.9, "orange"), (0.99, "green")))


def throughput_by_outcome() -> PanelBuilder:
    """4. Claimed messages per second by final status."""
    return _series(
        "Throughput by outcome",
        "Claimed messages per second by status: success, failure (dead-lettered after the last "
        "attempt), retried, cancelled, dead (never ran).",
        "ops",
        [("{{status}}", q.THROUGHPUT_BY_STATUS)],
    )


def duration_percentiles() -> PanelBuilder:
    """5. Run time of an attempt."""
    return _series(
        "Job duration p50 / p90 / p99",
        "Run time of one attempt (workflow_job_duration_seconds), all selected queues.",
        "s",
        q.duration_quantiles(),
    )


def per_pod() -> PanelBuilder:
    """6. Active jobs (left axis) and throughput (right axis) per pod."""
    panel = _series(
        "Per pod: active jobs and throughput",
        "Left axis: jobs running per pod. Right axis: messages finished per second per pod. "
        "A pod with active jobs but no throughput is stuck; an uneven split is normal briefly.",
        "short",
        [("{{pod}} active", q.POD_ACTIVE), ("{{pod}} jobs/s", q.POD_THROUGHPUT)],
    )
    return _right_axis(panel, "B", "ops")


def queue_wait() -> PanelBuilder:
    """7. Enqueue-to-start percentiles and the age of the oldest waiting job."""
    panel = _series(
        "Time waiting in the queue",
        "Enqueue-to-start percentiles of the jobs that started (workflow_job_wait_seconds) and "
        f"the age of the job next in line. {q.WAIT_ALERT} fires when the oldest job has waited "
        "more than 600 s for 5m (dashed line).",
        "s",
        [*q.wait_quantiles(), ("{{queue}} oldest waiting job", q.OLDEST_AGE)],
    )
    return _alert_line(panel, 600)


def retries_and_dead_letters() -> PanelBuilder:
    """8. Retry and dead-letter rates (left axis); retry set and dead list sizes (right axis)."""
    panel = _series(
        "Retries and dead letters",
        "Left axis: attempts rescheduled and jobs dead-lettered per second. Right axis: jobs "
        "waiting for a retry ({Q}:delayed) and the dead-letter list length ({Q}:dead).",
        "ops",
        [
            ("{{queue}} retried/s", q.RETRIED_RATE),
            ("{{queue}} dead-lettered/s", q.DEAD_RATE),
            ("{{queue}} awaiting retry", q.DELAYED),
            ("{{queue}} dead-letter list", q.DEAD_LETTER),
        ],
    )
    return _right_axis(_right_axis(panel, "C", "short"), "D", "short")


def saturation() -> PanelBuilder:
    """9. Busy slots over all slots."""
    panel = _series(
        "Saturation: active / capacity",
        "Share of worker slots busy (sum of active / sum of capacity). "
        f"{q.SATURATION_ALERT} fires at 90% or more while the queue grows for 15m (dashed line).",
        "percentunit",
        [("{{queue}}", q.SATURATION)],
    ).max(1)
    return _alert_line(panel, 0.9)


def queue_stall() -> PanelBuilder:
    """10. Jobs waiting while nothing finishes, with the stall alert's state."""
    panel = _series(
        "Queue stall",
        f"Jobs waiting on a queue where nothing finished in the last $__rate_interval (0 while "
        f"jobs flow). Alert {q.STALL_ALERT}: jobs waiting and no message finished for 10m, held "
        "5m (max by (namespace, queue) (workflow_jobs_queued) > 0 unless on (namespace, queue) "
        "sum by (namespace, queue) (increase(workflow_jobs_total[10m])) > 0). "
        "The second series is 1 while the alert fires.",
        "short",
        [
            ("{{queue}} stalled jobs", q.STALLED_JOBS),
            (f"{{{{queue}}}} {q.STALL_ALERT}", q.STALL_FIRING),
        ],
    )
    return (
        _alert_line(panel, 1)
        .color_scheme(dash_b.FieldColor().mode(dash_m.FieldColorModeId.THRESHOLDS))
        .span(24)
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
