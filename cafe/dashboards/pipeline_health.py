"""The operations dashboard "Pipeline health" (uid `pipeline-health`), for whoever runs the loads.

Warehouse panels read the load ledger marts (`rpt_file_loads`, `rpt_rejection_reasons_daily`,
`rpt_branch_freshness`); AWS panels read CloudWatch: the loader Lambda's invocations,
errors, duration and throttles, and the depth of the landing queue's dead-letter queue.
The Lambda function and the queue are dashboard variables (text boxes defaulting to the
names the CloudFormation stack gives them), so one dashboard serves every environment.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import cloudwatch as cloudwatch_builders
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import cloudwatch as cloudwatch_models
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models

from cafe.dashboards.flavours import CLOUDWATCH, Flavour, ResultFormat
from cafe.dashboards.layout import Grid, legend, thresholds
from cafe.dbt_project import expected_file_interval_hours, silent_after_hours
from loader.settings import DEFAULT_DLQ

UID = "pipeline-health"
TITLE = "Pipeline health"
DEFAULT_LAMBDA_FUNCTION = "cafe-elt-loader"
# The contract's freshness rule, from its one home (dbt vars): one export a day is expected,
# and a branch is silent after `silent_after_hours`.
EXPECTED_EXPORT_HOURS = expected_file_interval_hours()
SILENT_AFTER_HOURS = silent_after_hours()


def _hourly_timeseries(
    flavour: Flavour, title: str, description: str, select: str, where: str = ""
) -> timeseries.Panel:
    sql = f"""
SELECT
    {flavour.time_group("started_at_utc", "1h")},
    {select}
FROM {flavour.schema}.rpt_file_loads
WHERE $__timeFilter(started_at_utc){where}
GROUP BY 1
ORDER BY 1
"""
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TIME_SERIES))
        .legend(legend())
    )


def files_per_hour(flavour: Flavour, grid: Grid) -> timeseries.Panel:
    panel = _hourly_timeseries(
        flavour,
        "Files per hour",
        "Load attempts per hour by outcome (loaded, replaced, duplicate, failed, refused).",
        "count(CASE WHEN status = 'loaded' THEN 1 END) AS \"Loaded\",\n"
        "    count(CASE WHEN status = 'replaced' THEN 1 END) AS \"Replaced\",\n"
        "    count(CASE WHEN status = 'duplicate' THEN 1 END) AS \"Duplicate\",\n"
        "    count(CASE WHEN status IN ('failed', 'refused') THEN 1 END) AS \"Failed\"",
    )
    panel.draw_style(common_models.GraphDrawStyle.BARS).fill_opacity(80).stacking(
        common_builders.StackingConfig().mode(common_models.StackingMode.NORMAL)
    ).unit("short").override_by_name(
        "Failed",
        [
            dashboard_models.DynamicConfigValue(
                id_val="color", value={"mode": "fixed", "fixedColor": "red"}
            )
        ],
    )
    return grid.place(panel, 12, 8)


def rows_per_hour(flavour: Flavour, grid: Grid) -> timeseries.Panel:
    panel = _hourly_timeseries(
        flavour,
        "Rows loaded and rejected",
        "Rows committed to raw.transactions and rows refused by validation, per hour.",
        'sum(rows_loaded) AS "Rows loaded",\n    sum(rows_rejected) AS "Rows rejected"',
    )
    panel.unit("short").draw_style(common_models.GraphDrawStyle.BARS).fill_opacity(60)
    return grid.place(panel, 12, 8)


def load_latency(flavour: Flavour, grid: Grid) -> timeseries.Panel:
    panel = _hourly_timeseries(
        flavour,
        "Load latency",
        "Time from the file's export (its name) to its rows being in the warehouse.",
        'avg(load_lag_seconds) AS "Average",\n    max(load_lag_seconds) AS "Worst"',
        "\n    AND status IN ('loaded', 'replaced')",
    )
    panel.unit("s").line_width(2).show_points(common_models.VisibilityMode.ALWAYS)
    return grid.place(panel, 12, 8)


def rejection_reasons(flavour: Flavour, grid: Grid) -> bargauge.Panel:
    sql = f"""
SELECT
    reason_category AS "Reason",
    sum(rejected_rows) AS "Rejected rows"
FROM {flavour.schema}.rpt_rejection_reasons_daily
WHERE $__timeFilter(day_utc)
GROUP BY reason_category
ORDER BY 2 DESC, 1
LIMIT 10
"""
    panel = (
        bargauge.Panel()
        .title("Top rejection reasons")
        .description("Why lines were refused, most frequent first.")
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TABLE))
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .display_mode(common_models.BarGaugeDisplayMode.BASIC)
        .reduce_options(common_builders.ReduceDataOptions().values(True).calcs([]))
        .unit("short")
        .min(0)
        .thresholds(thresholds((None, "orange")))
    )
    return grid.place(panel, 12, 8)


def branch_freshness(flavour: Flavour, grid: Grid) -> stat.Panel:
    # Not time-filtered: freshness is measured against now(), whatever range is on screen.
    sql = f"""
SELECT
    branch_name AS "Branch",
    hours_since_last_file AS "Hours since last file"
FROM {flavour.schema}.rpt_branch_freshness
ORDER BY hours_since_last_file DESC, branch_name
"""
    panel = (
        stat.Panel()
        .title("Freshness per branch")
        .description(
            f"Hours since each branch's last export. Branches export once a day: "
            f"amber past {EXPECTED_EXPORT_HOURS} h, red (silent) past "
            f"{SILENT_AFTER_HOURS} h."
        )
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TABLE))
        .reduce_options(
            common_builders.ReduceDataOptions().values(True).calcs([]).fields("/^Hours/")
        )
        .unit("h")
        .decimals(1)
        .color_mode(common_models.BigValueColorMode.BACKGROUND)
        .graph_mode(common_models.BigValueGraphMode.NONE)
        .text_mode(common_models.BigValueTextMode.VALUE_AND_NAME)
        .thresholds(
            thresholds(
                (None, "green"),
                (EXPECTED_EXPORT_HOURS, "orange"),
                (SILENT_AFTER_HOURS, "red"),
            )
        )
        .color_scheme(
            dashboard_builders.FieldColor().mode(dashboard_models.FieldColorModeId.THRESHOLDS)
        )
    )
    return grid.place(panel, 12, 8)


def failed_loads(flavour: Flavour, grid: Grid) -> table.Panel:
    sql = f"""
SELECT
    started_at_utc AS "Started",
    branch_name AS "Branch",
    source_key AS "File",
    status AS "Status",
    error_text AS "Error"
FROM {flavour.schema}.rpt_file_loads
WHERE $__timeFilter(started_at_utc)
    AND status IN ('failed', 'refused')
ORDER BY started_at_utc DESC
LIMIT 100
"""
    panel = (
        table.Panel()
        .title("Failed loads")
        .description("Files that could not be loaded at all, newest first.")
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TABLE))
        .no_value("No failed loads")
    )
    return grid.place(panel, 12, 8)


def _lambda_metric(
    ref_id: str, metric: str, statistic: str, label: str
) -> cloudwatch_builders.MetricsQuery:
    return _metric(
        ref_id, "AWS/Lambda", metric, statistic, {"FunctionName": "$lambda_function"}, label
    )


def _metric(
    ref_id: str,
    namespace: str,
    metric: str,
    statistic: str,
    dimensions: cloudwatch_models.Dimensions,
    label: str,
) -> cloudwatch_builders.MetricsQuery:
    return (
        cloudwatch_builders.MetricsQuery()
        .ref_id(ref_id)
        .datasource(CLOUDWATCH)
        .query_mode(cloudwatch_models.QueryMode.METRICS)
        .metric_query_type(cloudwatch_models.MetricQueryType.SEARCH)
        .metric_editor_mode(cloudwatch_models.MetricEditorMode.BUILDER)
        .region("default")
        .namespace(namespace)
        .metric_name(metric)
        .dimensions(dimensions)
        .match_exact(True)
        .statistic(statistic)
        .period("")
        .id("")
        .label(label)
    )


def _cloudwatch_panel(title: str, description: str, unit: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(CLOUDWATCH)
        .unit(unit)
        .legend(legend())
    )


def lambda_panels(grid: Grid) -> list[timeseries.Panel]:
    grid.new_row()
    invocations = (
        _cloudwatch_panel(
            "Loader invocations and errors",
            "Lambda invocations and failed ones "
            "(a failed batch is retried, then parked in the dead-letter queue).",
            "short",
        )
        .with_target(_lambda_metric("A", "Invocations", "Sum", "Invocations"))
        .with_target(_lambda_metric("B", "Errors", "Sum", "Errors"))
    )
    duration = (
        _cloudwatch_panel("Loader duration", "How long one invocation (one file) takes.", "ms")
        .with_target(_lambda_metric("A", "Duration", "Average", "Average"))
        .with_target(_lambda_metric("B", "Duration", "p99", "p99"))
        .with_target(_lambda_metric("C", "Duration", "Maximum", "Maximum"))
    )
    throttles = (
        _cloudwatch_panel(
            "Loader throttles", "Invocations refused for lack of concurrency.", "short"
        )
        .with_target(_lambda_metric("A", "Throttles", "Sum", "Throttles"))
        .draw_style(common_models.GraphDrawStyle.BARS)
    )
    dead_letters = (
        _cloudwatch_panel(
            "Dead-letter queue depth",
            "Landing events that failed every retry and "
            "wait in the dead-letter queue; anything above zero needs a look.",
            "short",
        )
        .with_target(
            _metric(
                "A",
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "Maximum",
                {"QueueName": "$dlq_name"},
                "Messages visible",
            )
        )
        .thresholds(thresholds((None, "green"), (1, "red")))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common_models.GraphThresholdsStyleMode.LINE
            )
        )
    )
    return [
        grid.place(invocations, 12, 8),
        grid.place(duration, 12, 8),
        grid.place(throttles, 12, 8),
        grid.place(dead_letters, 12, 8),
    ]


def _text_variable(name: str, label: str, default: str) -> dashboard_builders.TextBoxVariable:
    return (
        dashboard_builders.TextBoxVariable(name)
        .label(label)
        .default_value(default)
        .current(dashboard_models.VariableOption(selected=True, text=default, value=default))
    )


def build(flavour: Flavour) -> dashboard_builders.Dashboard:
    grid = Grid()
    dashboard = (
        dashboard_builders.Dashboard(TITLE)
        .uid(UID)
        .description(
            "Is every branch's daily file arriving and loading? Load ledger marts "
            "and the loader's CloudWatch metrics."
        )
        .tags(["cafe-elt", "operations", flavour.name])
        .timezone("utc")
        .time("now-7d", "now")
        .refresh("5m")
        .readonly()
        .with_variable(
            _text_variable("lambda_function", "Loader function", DEFAULT_LAMBDA_FUNCTION)
        )
        .with_variable(_text_variable("dlq_name", "Dead-letter queue", DEFAULT_DLQ))
    )
    panels: list[object] = [
        files_per_hour(flavour, grid),
        rows_per_hour(flavour, grid),
        load_latency(flavour, grid),
        rejection_reasons(flavour, grid),
        branch_freshness(flavour, grid),
        failed_loads(flavour, grid),
        *lambda_panels(grid),
    ]
    for panel in panels:
        dashboard.with_panel(panel)  # type: ignore[arg-type]
    return dashboard
