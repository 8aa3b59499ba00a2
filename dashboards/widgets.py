"""Panel builders shared by every row: time series, stats, alert lines and right axes."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dash_m

DATASOURCE = dash_m.DataSourceRef(type_val="prometheus", uid="${datasource}")

Target = tuple[str, str]  # (legend, expr)
PanelBuilder = cogbuilder.Builder[dash_m.Panel]


def targets(items: list[Target]) -> list[prometheus.Dataquery]:
    """Range queries with refIds A, B, C... in order."""
    return [
        prometheus.Dataquery().ref_id(chr(ord("A") + i)).expr(expr).legend_format(legend).range()
        for i, (legend, expr) in enumerate(items)
    ]


def thresholds(*steps: tuple[float | None, str]) -> dash_b.ThresholdsConfig:
    """Absolute thresholds: (value, colour) pairs, the first value None."""
    return (
        dash_b.ThresholdsConfig()
        .mode(dash_m.ThresholdsMode.ABSOLUTE)
        .steps([dash_m.Threshold(value=value, color=color) for value, color in steps])
    )


def series(
    title: str, description: str, unit: str, items: list[Target], *, span: int = 12
) -> timeseries.Panel:
    """A time-series panel with a table legend (last and max) and a shared tooltip."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .height(8)
        .span(span)
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
    return panel.targets(targets(items))  # type: ignore[arg-type]


def alert_line(panel: timeseries.Panel, *values: float) -> timeseries.Panel:
    """Draw alert thresholds as dashed lines (orange below the last, red at the last)."""
    steps: list[tuple[float | None, str]] = [(None, "green")]
    steps += [(value, "orange") for value in values[:-1]]
    steps.append((values[-1], "red"))
    return panel.thresholds(thresholds(*steps)).thresholds_style(
        common_b.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
    )


def right_axis(panel: timeseries.Panel, unit: str, *ref_ids: str) -> timeseries.Panel:
    """Put the queries `ref_ids` on a right axis with their own unit."""
    for ref_id in ref_ids:
        panel = panel.override_by_query(
            ref_id,
            [
                dash_m.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
                dash_m.DynamicConfigValue(id_val="unit", value=unit),
            ],
        )
    return panel


def dashed(panel: timeseries.Panel, *ref_ids: str) -> timeseries.Panel:
    """Draw the queries `ref_ids` (limits, maxima) as dashed lines without fill."""
    for ref_id in ref_ids:
        panel = panel.override_by_query(
            ref_id,
            [
                dash_m.DynamicConfigValue(
                    id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
                ),
                dash_m.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
            ],
        )
    return panel


def single_stat(title: str, description: str, unit: str, items: list[Target]) -> stat.Panel:
    """A stat panel showing the last value with a sparkline."""
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
    return panel.targets(targets(items))  # type: ignore[arg-type]
