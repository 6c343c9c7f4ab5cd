"""The business dashboard "Café sales" (uid `cafe-sales`), for branch managers and owners.

Every query filters on a `*_utc` timestamptz column with Grafana's time macros (which work in
UTC) and groups by the marts' café-local calendar columns only where a panel is about local
hours or days. Queries use nothing both warehouses do not share, so the same SQL serves the
PostgreSQL and the Redshift datasource.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, heatmap, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import heatmap as heatmap_builders
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models import heatmap as heatmap_models
from grafana_foundation_sdk.models import piechart as piechart_models

from cafe.dashboards.flavours import Flavour, ResultFormat
from cafe.dashboards.layout import (
    SELECTED_BRANCHES,
    SELECTED_CATEGORIES,
    Grid,
    legend,
    sql_query_variable,
    transformation,
)

UID = "cafe-sales"
TITLE = "Café sales"


def _previous_period_sql(flavour: Flavour, measure: str, label: str) -> str:
    """One row for the previous period and one for the selected one, oldest first.

    The previous period has the length of the selected range and ends at `$__timeFrom()`.
    A stat panel showing the last value with "percent change" then reads "this period, and
    how it compares": Grafana computes the change between the first and the last value.
    Epoch arithmetic (rather than interval subtraction) keeps the SQL valid on Redshift.
    """
    return f"""
WITH bounds AS (
    SELECT
        extract(epoch FROM $__timeFrom()::timestamptz) AS from_s,
        extract(epoch FROM $__timeTo()::timestamptz) AS to_s
),

periods AS (
    SELECT from_s - (to_s - from_s) AS start_s, from_s AS end_s FROM bounds
    UNION ALL
    SELECT from_s AS start_s, to_s AS end_s FROM bounds
)

SELECT
    TIMESTAMP 'epoch' + p.start_s * INTERVAL '1 second' AS "time",
    {measure} AS "{label}"
FROM periods AS p
LEFT JOIN {flavour.schema}.rpt_daily_branch_sales AS s
    ON extract(epoch FROM s.day_start_utc) >= p.start_s
    AND extract(epoch FROM s.day_start_utc) < p.end_s
    AND s.branch_name IN ({SELECTED_BRANCHES})
GROUP BY p.start_s
ORDER BY p.start_s
"""


# (title, measure over rpt_daily_branch_sales aliased `s`, unit, decimals, width)
HEADLINES: tuple[tuple[str, str, str, int, int], ...] = (
    ("Revenue", "coalesce(sum(s.revenue), 0)", "currencyGBP", 0, 5),
    ("Transactions", "coalesce(sum(s.transactions), 0)", "short", 0, 5),
    ("Average basket", "sum(s.revenue) / nullif(sum(s.transactions), 0)", "currencyGBP", 2, 5),
    ("Active branches", "count(DISTINCT s.branch_name)", "short", 0, 4),
    ("Products sold", "coalesce(sum(s.items_sold), 0)", "short", 0, 5),
)


def headline_stats(flavour: Flavour, grid: Grid) -> list[stat.Panel]:
    panels = []
    for title, measure, unit, decimals, width in HEADLINES:
        panel = (
            stat.Panel()
            .title(title)
            .description(
                f"{title} in the selected period; the arrow compares it with the "
                "period of the same length just before."
            )
            .datasource(flavour.datasource)
            .with_target(
                flavour.target(
                    _previous_period_sql(flavour, measure, title), ResultFormat.TIME_SERIES
                )
            )
            .unit(unit)
            .decimals(decimals)
            .graph_mode(common_models.BigValueGraphMode.NONE)
            .color_mode(common_models.BigValueColorMode.NONE)
            .show_percent_change(True)
            .reduce_options(
                common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
            )
        )
        panels.append(grid.place(panel, width, 4))
    return panels


def revenue_by_branch(flavour: Flavour, grid: Grid) -> timeseries.Panel:
    sql = f"""
SELECT
    day_start_utc AS "time",
    branch_name AS metric,
    sum(revenue) AS revenue
FROM {flavour.schema}.rpt_daily_branch_sales
WHERE $__timeFilter(day_start_utc)
    AND branch_name IN ({SELECTED_BRANCHES})
GROUP BY day_start_utc, branch_name
ORDER BY day_start_utc, branch_name
"""
    panel = (
        timeseries.Panel()
        .title("Revenue by branch")
        .description("Daily revenue per branch (café local trading days).")
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TIME_SERIES))
        .unit("currencyGBP")
        .line_width(2)
        .fill_opacity(10)
        .legend(legend(common_models.LegendPlacement.RIGHT, table=False))
    )
    return grid.place(panel, 16, 9)


def payment_mix(flavour: Flavour, grid: Grid) -> piechart.Panel:
    sql = f"""
SELECT
    payment_method AS "Payment method",
    sum(transactions) AS "Transactions"
FROM {flavour.schema}.rpt_payment_mix_daily
WHERE $__timeFilter(day_start_utc)
    AND branch_name IN ({SELECTED_BRANCHES})
GROUP BY payment_method
ORDER BY payment_method
"""
    panel = (
        piechart.Panel()
        .title("Payment mix")
        .description("Share of transactions paid by card and in cash.")
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TABLE))
        .pie_type(piechart_models.PieChartType.DONUT)
        .reduce_options(common_builders.ReduceDataOptions().values(True).calcs([]))
        .display_labels([piechart_models.PieChartLabels.PERCENT])
    )
    return grid.place(panel, 8, 9)


def top_products(flavour: Flavour, grid: Grid) -> bargauge.Panel:
    sql = f"""
SELECT
    product_name AS "Product",
    sum(revenue) AS "Revenue"
FROM {flavour.schema}.rpt_product_sales_daily
WHERE $__timeFilter(day_start_utc)
    AND branch_name IN ({SELECTED_BRANCHES})
    AND product_category IN ({SELECTED_CATEGORIES})
GROUP BY product_name
ORDER BY 2 DESC, 1
LIMIT 15
"""
    panel = (
        bargauge.Panel()
        .title("Top products")
        .description(
            "The fifteen best-selling products by revenue, for the selected branches "
            "and product categories."
        )
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TABLE))
        .unit("currencyGBP")
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .display_mode(common_models.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common_builders.ReduceDataOptions().values(True).calcs([]))
        .min(0)
    )
    return grid.place(panel, 12, 10)


def customers_over_time(flavour: Flavour, grid: Grid) -> timeseries.Panel:
    sql = f"""
SELECT
    week_start_utc AS "time",
    sum(new_customers) AS "New",
    sum(returning_customers) AS "Returning"
FROM {flavour.schema}.rpt_customers_weekly
WHERE $__timeFilter(week_start_utc)
    AND branch_name IN ({SELECTED_BRANCHES})
GROUP BY week_start_utc
ORDER BY week_start_utc
"""
    panel = (
        timeseries.Panel()
        .title("New and returning customers")
        .description(
            "Card customers per week (Monday, café local): first visit ever, or back "
            "again. A customer visiting two branches counts once in each."
        )
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TIME_SERIES))
        .draw_style(common_models.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(common_builders.StackingConfig().mode(common_models.StackingMode.NORMAL))
        .unit("short")
        .legend(legend())
    )
    return grid.place(panel, 12, 10)


def hourly_footfall(flavour: Flavour, grid: Grid) -> heatmap.Panel:
    # Pre-bucketed "heatmap rows": x = café local day, one y bucket per local hour (zero-padded
    # labels sort in hour order), value = transactions. Grafana's heatmap needs time on x.
    sql = f"""
SELECT
    CAST(sales_date_local AS timestamp) AS "time",
    lpad(CAST(local_hour AS varchar), 2, '0') || ':00' AS metric,
    sum(transactions) AS transactions
FROM {flavour.schema}.rpt_hourly_footfall
WHERE $__timeFilter(hour_start_utc)
    AND branch_name IN ({SELECTED_BRANCHES})
GROUP BY sales_date_local, local_hour
ORDER BY sales_date_local, local_hour
"""
    panel = (
        heatmap.Panel()
        .title("Hourly footfall")
        .description("Transactions per café local hour (rows) and trading day (columns).")
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TIME_SERIES))
        .calculate(False)
        .rows_frame(
            heatmap_builders.RowsHeatmapOptions()
            .value("Transactions")
            .layout(common_models.HeatmapCellLayout.LE)
        )
        .color(
            heatmap_builders.HeatmapColorOptions()
            .mode(heatmap_models.HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .steps(64)
            .exponent(0.5)
            .scale(heatmap_models.HeatmapColorScale.EXPONENTIAL)
            .fill("dark-orange")
            .reverse(False)
        )
        .cell_gap(1)
    )
    return grid.place(panel, 12, 10)


def footfall_by_weekday(flavour: Flavour, grid: Grid) -> table.Panel:
    sql = f"""
SELECT
    weekday_number,
    weekday_name AS "Weekday",
    lpad(CAST(local_hour AS varchar), 2, '0') || ':00' AS "Hour",
    sum(transactions) AS "Transactions"
FROM {flavour.schema}.rpt_hourly_footfall
WHERE $__timeFilter(hour_start_utc)
    AND branch_name IN ({SELECTED_BRANCHES})
GROUP BY weekday_number, weekday_name, local_hour
ORDER BY weekday_number, local_hour
"""
    panel = (
        table.Panel()
        .title("Footfall by weekday and hour")
        .description(
            "Transactions per café local weekday and hour over the selected period: "
            "where the morning and lunch peaks fall."
        )
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TABLE))
        .with_transformation(
            transformation(
                "groupingToMatrix",
                {
                    "rowField": "Weekday",
                    "columnField": "Hour",
                    "valueField": "Transactions",
                    "emptyValue": "zero",
                },
            )
        )
        .cell_options(
            common_models.TableColoredBackgroundCellOptions(
                mode=common_models.TableCellBackgroundDisplayMode.GRADIENT
            )
        )
        .color_scheme(
            dashboard_builders.FieldColor().mode(dashboard_models.FieldColorModeId.CONTINUOUS_YL_RD)
        )
    )
    return grid.place(panel, 12, 10)


def cohort_retention(flavour: Flavour, grid: Grid) -> table.Panel:
    sql = f"""
SELECT
    CAST(cohort_week_local AS varchar) || ' (' || CAST(cohort_size AS varchar) || ')'
        AS "Cohort week (customers)",
    CAST(weeks_since_first AS varchar) AS "Weeks since first visit",
    retention_rate AS "Retention"
FROM {flavour.schema}.rpt_cohort_retention
WHERE $__timeFilter(cohort_week_utc)
ORDER BY cohort_week_local, weeks_since_first
"""
    panel = (
        table.Panel()
        .title("Cohort retention")
        .description(
            "Share of each first-visit week's card customers seen again N weeks later "
            "(all branches)."
        )
        .datasource(flavour.datasource)
        .with_target(flavour.target(sql, ResultFormat.TABLE))
        .with_transformation(
            transformation(
                "groupingToMatrix",
                {
                    "rowField": "Cohort week (customers)",
                    "columnField": "Weeks since first visit",
                    "valueField": "Retention",
                },
            )
        )
        .unit("percentunit")
        .decimals(0)
        .min(0)
        .max(1)
        .cell_options(
            common_models.TableColoredBackgroundCellOptions(
                mode=common_models.TableCellBackgroundDisplayMode.GRADIENT
            )
        )
        .color_scheme(
            dashboard_builders.FieldColor().mode(dashboard_models.FieldColorModeId.CONTINUOUS_BLUES)
        )
    )
    return grid.place(panel, 24, 10)


def build(flavour: Flavour) -> dashboard_builders.Dashboard:
    grid = Grid()
    dashboard = (
        dashboard_builders.Dashboard(TITLE)
        .uid(UID)
        .description(
            "Revenue, baskets, products, payment mix, footfall and customer retention "
            "across the café branches, from the reporting marts."
        )
        .tags(["cafe-elt", "business", flavour.name])
        .timezone("Europe/London")
        .week_start("monday")
        .time("now-30d", "now")
        .refresh("")
        .readonly()
        .with_variable(
            sql_query_variable(
                flavour,
                "branch",
                "Branch",
                f"SELECT DISTINCT branch_name FROM {flavour.schema}.rpt_daily_branch_sales "
                "ORDER BY branch_name",
            )
        )
        .with_variable(
            sql_query_variable(
                flavour,
                "product_category",
                "Product category",
                f"SELECT DISTINCT product_category FROM {flavour.schema}.rpt_product_sales_daily "
                "ORDER BY product_category",
            )
        )
    )
    panels: list[object] = [
        *headline_stats(flavour, grid),
        revenue_by_branch(flavour, grid),
        payment_mix(flavour, grid),
        top_products(flavour, grid),
        customers_over_time(flavour, grid),
        hourly_footfall(flavour, grid),
        footfall_by_weekday(flavour, grid),
        cohort_retention(flavour, grid),
    ]
    for panel in panels:
        dashboard.with_panel(panel)  # type: ignore[arg-type]
    return dashboard
