"""The operations dashboard "Pipeline health" (uid `pipeline-health`), for whoever runs the loads.

Top first: is every branch fresh and did the last build hold (freshness per branch, build
checks), then what the loader did (files and rows per hour, failed or dead load attempts,
column drift, rejected lines by field, load latency), then the AWS side from CloudWatch.

Warehouse panels read the operations marts: `rpt_file_loads` and `rpt_branch_freshness`
are views over the live ledger, so a load shows as it happens and ages are measured with
the clock of the query that reads them, whenever dbt last ran; `rpt_build_results` holds
every build's and freshness run's checks; `rpt_rejection_reasons_daily` the refused lines
by the field their reason names. AWS panels read CloudWatch: the loader Lambda's
invocations, errors, duration and throttles, the loader's own outcome metrics (namespace
`CafeElt`, among them files deferred near the invocation's deadline, which no ledger row
records) and the depth of the landing queue's dead-letter queue. The Lambda function and
the queue are dashboard variables (text boxes defaulting to the names the CloudFormation
stack gives them), so one dashboard serves every environment.
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
from cafe.dashboards.operations import (
    columns_first_seen_cte,
    drift_columns_ctes,
    latest_runs_cte,
    status_rank,
)
from cafe.dbt_project import expected_file_interval_hours, int_var, silent_after_hours
from loader.settings import DEFAULT_DLQ

UID = "pipeline-health"
TITLE = "Pipeline health"
DEFAULT_LAMBDA_FUNCTION = "cafe-elt-loader"
# The contract's freshness rule, from its one home (dbt vars): one export a day is expected,
# and a branch is silent after `silent_after_hours`.
EXPECTED_EXPORT_HOURS = expected_file_interval_hours()
SILENT_AFTER_HOURS = silent_after_hours()
DEAD_AFTER_MINUTES = int_var("started_load_dead_after_minutes")
# The loader's own metrics (loader/handler.py; a test holds the two equal). Not imported:
# that module is the Lambda entry point and sets up logging when imported.
LOADER_METRICS_NAMESPACE = "CafeElt"
LOADER_SERVICE = "cafe-loader"
# Outcome metrics of the loader, each a count per file (or per message for LoadsDeferred).
LOADER_OUTCOMES = (
    ("FilesLoaded", "Loaded"),
    ("DuplicatesSkipped", "Duplicates"),
    ("StaleVersionsSkipped", "Stale versions"),
    ("LoadsDeferred", "Deferred (deadline)"),
    ("LoadErrors", "Errors"),
)


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


# The series of "Files per hour": (label, the attempts it counts, fixed colour or None).
FILE_OUTCOMES: tuple[tuple[str, str, str | None], ...] = (
    ("Loaded", "status = 'loaded'", "green"),
    ("Replaced", "status = 'replaced'", None),
    ("Duplicate", "status = 'duplicate'", None),
    ("Stale", "status = 'stale'", "yellow"),
    ("Running", "status = 'started' AND NOT is_abandoned", "blue"),
    ("Died", "is_abandoned", "dark-red"),
    ("Failed", "status IN ('failed', 'refused')", "red"),
)


def files_per_hour(flavour: Flavour, grid: Grid) -> timeseries.Panel:
    panel = _hourly_timeseries(
        flavour,
        "Files per hour",
        "Load attempts per hour by outcome: loaded, replaced (a corrected re-export), "
        "duplicate (same bytes as a current file), stale (older than the version already "
        "loaded), running, died (started and never finished: "
        f"still running after {DEAD_AFTER_MINUTES} minutes), failed or refused.",
        ",\n    ".join(
            f'count(CASE WHEN {counted} THEN 1 END) AS "{label}"'
            for label, counted, _ in FILE_OUTCOMES
        ),
    )
    panel.draw_style(common_models.GraphDrawStyle.BARS).fill_opacity(80).stacking(
        common_builders.StackingConfig().mode(common_models.StackingMode.NORMAL)
    ).unit("short")
    for label, _, color in FILE_OUTCOMES:
        if color:
            panel.override_by_name(label, [_fixed_color(color)])
    return grid.place(panel, 12, 8)


def _fixed_color(color: str) -> dashboard_models.DynamicConfigValue:
    return dashboard_models.DynamicConfigValue(
        id_val="color", value={"mode": "fixed", "fixedColor": color}
    )


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
    reason_category AS "Field",
    sum(rejected_rows) AS "Rejected lines"
FROM {flavour.schema}.rpt_rejection_reasons_daily
WHERE $__timeFilter(day_utc)
GROUP BY reason_category
ORDER BY 2 DESC, 1
LIMIT 10
"""
    panel = (
        bargauge.Panel()
        .title("Rejected lines by field")
        .description(
            "Refused lines by the field their reason names (date, basket, total, ...; "
            "`line` for a line that could not be split). Reasons never quote a value: "
            "the lines themselves are in raw.rejected_rows, for the data team."
        )
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TABLE))
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .display_mode(common_models.BarGaugeDisplayMode.BASIC)
        .reduce_options(common_builders.ReduceDataOptions().values(True).calcs([]))
        .unit("short")
        .min(0)
        .thresholds(thresholds((None, "orange")))
        .no_value("No rejected lines")
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
            f"Hours since each branch's last export, measured when this panel is read (from "
            f"the live ledger, not at the last dbt build). Branches export once a day: "
            f"amber past {EXPECTED_EXPORT_HOURS} h, red (silent, the alert fires) past "
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


ValueMapping = (
    dashboard_models.ValueMap
    | dashboard_models.RangeMap
    | dashboard_models.RegexMap
    | dashboard_models.SpecialValueMap
)


def _status_colors() -> list[ValueMapping]:
    """Each run-result status in its colour, for a table cell coloured by its value."""
    colors = {
        "error": "red",
        "runtime error": "red",
        "fail": "red",
        "warn": "orange",
        "skipped": "purple",
        "pass": "green",
        "success": "green",
    }
    return [
        dashboard_models.ValueMap(
            options={
                status: dashboard_models.ValueMappingResult(color=color, index=index)
                for index, (status, color) in enumerate(colors.items())
            }
        )
    ]


def _colored_cells() -> dashboard_models.DynamicConfigValue:
    return dashboard_models.DynamicConfigValue(
        id_val="custom.cellOptions", value={"type": "color-background"}
    )


def build_checks(flavour: Flavour, grid: Grid) -> table.Panel:
    # Not time-filtered: the latest runs are what holds now, whatever range is on screen.
    sql = f"""
WITH {latest_runs_cte(flavour.schema)}

SELECT
    results.node_name AS "Check",
    results.check_kind AS "Kind",
    results.status AS "Status",
    results.failures AS "Rows found",
    results.age_hours AS "Hours since load",
    results.tested_node AS "Tested",
    results.failures_relation AS "Failing rows in",
    results.run_started_at_utc AS "Run started"
FROM {flavour.schema}.rpt_build_results AS results
INNER JOIN latest_runs
    ON results.command = latest_runs.command
    AND results.run_started_at_utc = latest_runs.run_started_at_utc
WHERE results.check_kind <> 'build' OR results.status IN ('error', 'skipped')
ORDER BY {status_rank("results.status")}, results.check_kind, results.node_name
"""
    panel = (
        table.Panel()
        .title("Build checks")
        .description(
            "The checks of the latest `dbt build` and the latest `dbt source freshness`, worst "
            "first (plus any model of that build that errored or was skipped). integrity: "
            "grain, relationships, reconciliation, privacy; a failure stops the marts that "
            "depend on it, and an alert fires. data_value: a finding about the data (a "
            "warning); the build goes on and the failing rows are stored where the last "
            "column says. freshness: hours since each source last received a load."
        )
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TABLE))
        .mappings(_status_colors())
        .override_by_name("Status", [_colored_cells()])
        .no_value("No build recorded yet")
    )
    return grid.place(panel, 12, 8)


def failed_loads(flavour: Flavour, grid: Grid) -> table.Panel:
    sql = f"""
WITH attempts AS (
    SELECT
        source_key,
        CASE WHEN is_abandoned THEN 'died' ELSE status END AS outcome,
        row_number() OVER (
            PARTITION BY source_key ORDER BY started_at_utc DESC, load_id DESC
        ) AS recency
    FROM {flavour.schema}.rpt_file_loads
),

latest_attempts AS (
    SELECT
        source_key,
        outcome
    FROM attempts
    WHERE recency = 1
)

SELECT
    loads.started_at_utc AS "Started",
    loads.branch_name AS "Branch",
    loads.source_key AS "File",
    CASE WHEN loads.is_abandoned THEN 'died' ELSE loads.status END AS "Outcome",
    CASE
        WHEN loads.is_abandoned
            THEN 'started and never finished (the loader timed out or was killed)'
        ELSE loads.error_text
    END AS "Error",
    latest_attempts.outcome AS "Latest attempt"
FROM {flavour.schema}.rpt_file_loads AS loads
INNER JOIN latest_attempts ON loads.source_key = latest_attempts.source_key
WHERE $__timeFilter(loads.started_at_utc)
    AND (loads.status IN ('failed', 'refused') OR loads.is_abandoned)
ORDER BY loads.started_at_utc DESC
LIMIT 100
"""
    panel = (
        table.Panel()
        .title("Failed loads")
        .description(
            "Files that could not be loaded at all, and load attempts that died (still "
            f"`started` {DEAD_AFTER_MINUTES} minutes after they began: a Lambda timeout or a "
            'killed process), newest first. "Latest attempt" is the file\'s newest attempt: '
            "`loaded` there means a retry has since succeeded."
        )
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TABLE))
        .no_value("No failed loads")
    )
    return grid.place(panel, 12, 8)


def column_drift(flavour: Flavour, grid: Grid) -> table.Panel:
    sql = f"""
WITH {drift_columns_ctes(flavour.schema)},

{columns_first_seen_cte()},

latest_files AS (
    SELECT
        column_name,
        source_key,
        row_number() OVER (
            PARTITION BY column_name ORDER BY started_at_utc DESC, source_key DESC
        ) AS recency
    FROM drift_columns
)

SELECT
    columns_seen.column_name AS "Column",
    columns_seen.first_seen_at_utc AS "First seen",
    columns_seen.last_seen_at_utc AS "Last seen",
    columns_seen.files AS "Files",
    columns_seen.branches AS "Branches",
    latest_files.source_key AS "Latest file"
FROM columns_seen
INNER JOIN latest_files
    ON columns_seen.column_name = latest_files.column_name
    AND latest_files.recency = 1
WHERE columns_seen.column_name IN (
    SELECT column_name FROM drift_columns WHERE $__timeFilter(started_at_utc)
)
ORDER BY columns_seen.first_seen_at_utc DESC, columns_seen.column_name
"""
    panel = (
        table.Panel()
        .title("Column drift")
        .description(
            "Header columns the loader does not know, in files that arrived in the time "
            "range: they are not loaded (every known column still is). First seen, last seen, "
            "files and branches are over all history; a column first seen in the last 24 "
            "hours raises the new-column alert. Names are as the file spelt them (a card "
            "number in a header refuses the file)."
        )
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TABLE))
        .no_value("No unknown columns")
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
    outcomes = _cloudwatch_panel(
        "Loader outcomes",
        "What the loader reported per file (CloudWatch, namespace "
        f"{LOADER_METRICS_NAMESPACE}). Deferred: a file not started because the invocation "
        "was too close to its deadline; SQS delivers it again, and no ledger row records it.",
        "short",
    ).draw_style(common_models.GraphDrawStyle.BARS)
    for ref_id, (metric, label) in zip("ABCDE", LOADER_OUTCOMES, strict=True):
        outcomes.with_target(
            _metric(
                ref_id,
                LOADER_METRICS_NAMESPACE,
                metric,
                "Sum",
                {"service": LOADER_SERVICE},
                label,
            )
        )
    return [
        grid.place(invocations, 12, 8),
        grid.place(outcomes, 12, 8),
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
            "Is every branch's daily file arriving and loading, and did the last build "
            "hold? Load ledger and build results marts, and the loader's CloudWatch metrics."
        )
        .tags(["cafe-elt", "operations", flavour.name])
        .timezone("utc")
        .time("now-7d", "now")
        .refresh(flavour.poll_interval)
        .readonly()
        .with_variable(
            _text_variable("lambda_function", "Loader function", DEFAULT_LAMBDA_FUNCTION)
        )
        .with_variable(_text_variable("dlq_name", "Dead-letter queue", DEFAULT_DLQ))
    )
    panels: list[object] = [
        branch_freshness(flavour, grid),
        build_checks(flavour, grid),
        files_per_hour(flavour, grid),
        rows_per_hour(flavour, grid),
        failed_loads(flavour, grid),
        column_drift(flavour, grid),
        rejection_reasons(flavour, grid),
        load_latency(flavour, grid),
        *lambda_panels(grid),
    ]
    for panel in panels:
        dashboard.with_panel(panel)  # type: ignore[arg-type]
    return dashboard
