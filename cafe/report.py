"""`cafe report`: the business dashboard as a static HTML page, for anyone without Grafana.

Each panel of the "Café sales" dashboard (PostgreSQL flavour) runs its own SQL — macros
expanded for the whole trading period in the marts, every branch and category selected —
and is drawn with matplotlib into an SVG beside `index.html`. Grafana's transformations
that shape a panel (long-to-wide series, `groupingToMatrix`) are reproduced here so that
the picture matches what Grafana shows.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt
import psycopg
from jinja2 import Environment, select_autoescape
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cafe.dashboards import cafe_sales
from cafe.dashboards.flavours import POSTGRES
from cafe.dashboards.macros import TimeRange, Variable
from cafe.dashboards.provisioning import dashboard_json
from cafe.dashboards.queries import (
    QueryResult,
    resolve_variables,
    run_panel_sql,
    sales_window,
)
from loader.errors import CafeError, ConfigurationError
from loader.settings import Settings

CAFE_TIMEZONE = ZoneInfo("Europe/London")
PALETTE = ("#c0622b", "#2b7bb9", "#6a9f3a", "#8e5ea2", "#d4a017", "#5f6b73", "#b23a48")


@dataclass(frozen=True)
class Headline:
    title: str
    value: str
    change: str


@dataclass(frozen=True)
class Chart:
    title: str
    description: str
    file_name: str


@dataclass(frozen=True)
class Matrix:
    row_labels: list[str]
    column_labels: list[str]
    values: list[list[float]]


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _format_value(value: float | None, unit: str | None, decimals: int) -> str:
    if value is None:
        return "-"
    text = f"{value:,.{decimals}f}"
    return f"£{text}" if unit == "currencyGBP" else text


def _period_values(result: QueryResult) -> tuple[float | None, float | None]:
    """A stat query's rows are (previous period, selected period): Grafana's percent change."""
    values = [row[1] for row in result.rows]
    current = values[-1] if values else None
    previous = values[0] if len(values) > 1 else None
    return current, previous


def headline(panel: dict[str, Any], whole: QueryResult, last_week: QueryResult) -> Headline:
    """The value over the whole period, and how the last week compares with the one before."""
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit, decimals = defaults.get("unit"), int(defaults.get("decimals", 0))
    total, _ = _period_values(whole)
    recent, before = _period_values(last_week)
    change = f"last 7 days {_format_value(recent, unit, decimals)}"
    if recent is not None and before:
        change += f", {(recent - before) / before:+.1%} on the 7 days before"
    return Headline(panel["title"], _format_value(total, unit, decimals), change)


def grouping_to_matrix(result: QueryResult, options: dict[str, str]) -> Matrix:
    """Grafana's `groupingToMatrix`: rows and columns in order of first appearance."""
    rows: dict[str, dict[str, float]] = {}
    columns: dict[str, None] = {}
    for record in result.as_dicts():
        row = str(record[options["rowField"]])
        column = str(record[options["columnField"]])
        rows.setdefault(row, {})[column] = float(record[options["valueField"]] or 0)
        columns.setdefault(column)
    column_labels = list(columns)
    values = [[cells.get(c, float("nan")) for c in column_labels] for cells in rows.values()]
    return Matrix(list(rows), column_labels, values)


def _series(result: QueryResult) -> dict[str, tuple[list[datetime], list[float]]]:
    """Grafana's long-to-wide step: a `metric` column names the series, else each number does."""
    names = [c.name for c in result.columns]
    series: dict[str, tuple[list[datetime], list[float]]] = {}
    for record in result.as_dicts():
        moment = record["time"]
        if isinstance(moment, (int, float)):
            moment = datetime.fromtimestamp(moment, CAFE_TIMEZONE)
        for name in names:
            if name in ("time", "metric") or not isinstance(record[name], (int, float)):
                continue
            label = str(record["metric"]) if "metric" in record else name
            times, values = series.setdefault(label, ([], []))
            times.append(moment)
            values.append(float(record[name]))
    return series


def _dates(moments: list[datetime]) -> Any:
    """Datetimes as x values: matplotlib converts them itself, its stubs only admit numbers."""
    return moments


def _draw_timeseries(axes: Axes, panel: dict[str, Any], result: QueryResult) -> None:
    series = _series(result)
    as_bars = panel["fieldConfig"]["defaults"].get("custom", {}).get("drawStyle") == "bars"
    if as_bars:
        # Stacked weekly bars, as Grafana draws them with stacking "normal".
        times = sorted({t for ts, _ in series.values() for t in ts})
        bottom = [0.0] * len(times)
        for colour, (label, (ts, vs)) in zip(PALETTE, series.items(), strict=False):
            by_time = dict(zip(ts, vs, strict=True))
            heights = [by_time.get(t, 0.0) for t in times]
            axes.bar(_dates(times), heights, bottom=bottom, width=5, label=label, color=colour)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    else:
        for colour, (label, (ts, vs)) in zip(PALETTE, series.items(), strict=False):
            axes.plot(_dates(ts), vs, label=label, color=colour, linewidth=1.8)
    axes.xaxis_date(CAFE_TIMEZONE)
    axes.legend(loc="upper left", fontsize=8, frameon=False)
    axes.figure.autofmt_xdate()


def _label_and_value(result: QueryResult) -> tuple[list[str], list[float]]:
    label_column = next(c.name for c in result.columns if not c.is_numeric)
    value_column = next(c.name for c in result.columns if c.is_numeric)
    return [str(v) for v in result.column(label_column)], [
        float(v or 0) for v in result.column(value_column)
    ]


def _draw_pie(axes: Axes, panel: dict[str, Any], result: QueryResult) -> None:
    labels, values = _label_and_value(result)
    axes.pie(values, labels=labels, autopct="%1.0f%%", colors=PALETTE, wedgeprops={"width": 0.45})
    axes.axis("equal")


def _draw_bars(axes: Axes, panel: dict[str, Any], result: QueryResult) -> None:
    labels, values = _label_and_value(result)
    axes.barh(labels[::-1], values[::-1], color=PALETTE[0])
    axes.tick_params(axis="y", labelsize=8)


def _draw_matrix(axes: Axes, matrix: Matrix, colour_map: str) -> None:
    image = axes.imshow(matrix.values, aspect="auto", cmap=colour_map)
    # At most ~30 column labels: a day-by-day axis over months would be unreadable.
    step = max(1, len(matrix.column_labels) // 30)
    ticks = range(0, len(matrix.column_labels), step)
    axes.set_xticks(ticks, [matrix.column_labels[i] for i in ticks], fontsize=7, rotation=90)
    axes.set_yticks(range(len(matrix.row_labels)), matrix.row_labels, fontsize=7)
    axes.figure.colorbar(image, ax=axes, fraction=0.04)


def _draw_heatmap(axes: Axes, panel: dict[str, Any], result: QueryResult) -> None:
    # Grafana's heatmap rows: x = local day, y = hour bucket (the `metric` label).
    matrix = grouping_to_matrix(
        result, {"rowField": "metric", "columnField": "time", "valueField": "transactions"}
    )
    hours = sorted(matrix.row_labels)
    order = [matrix.row_labels.index(h) for h in hours]
    days = [label[:10] for label in matrix.column_labels]
    _draw_matrix(axes, Matrix(hours, days, [matrix.values[i] for i in order]), "Oranges")
    axes.invert_yaxis()


def _draw_table(axes: Axes, panel: dict[str, Any], result: QueryResult) -> None:
    options = next(
        t["options"] for t in panel.get("transformations", []) if t["id"] == "groupingToMatrix"
    )
    colour_map = (
        "Blues" if panel["fieldConfig"]["defaults"].get("unit") == "percentunit" else "YlOrRd"
    )
    _draw_matrix(axes, grouping_to_matrix(result, options), colour_map)


DRAWERS: dict[str, Callable[[Axes, dict[str, Any], QueryResult], None]] = {
    "timeseries": _draw_timeseries,
    "piechart": _draw_pie,
    "bargauge": _draw_bars,
    "heatmap": _draw_heatmap,
    "table": _draw_table,
}


def draw_panel(panel: dict[str, Any], result: QueryResult, out_dir: Path) -> Chart:
    figure: Figure = plt.figure(figsize=(2.2 + 0.4 * panel["gridPos"]["w"], 4.2))
    try:
        axes = figure.add_subplot()
        if result.rows:
            DRAWERS[panel["type"]](axes, panel, result)
        else:
            axes.text(0.5, 0.5, "No data", ha="center", va="center", transform=axes.transAxes)
        for side in ("top", "right"):
            axes.spines[side].set_visible(False)
        figure.tight_layout()
        file_name = f"{_slug(panel['title'])}.svg"
        # The page shows the title as the figure's heading; the file keeps it as metadata.
        figure.savefig(out_dir / file_name, format="svg", metadata={"Title": panel["title"]})
    finally:
        plt.close(figure)
    return Chart(panel["title"], panel.get("description", ""), file_name)


# The browser asks every page for an icon; without one it logs a 404 on each visit.
FAVICON = "data:image/svg+xml," + quote(
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 100 100'>"
    "<text y='.9em' font-size='90'>\u2615</text></svg>"
)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<link rel="icon" href="{{ favicon }}">
<style>
 body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; background: #faf8f5; }
 .headlines { display: flex; gap: 1rem; flex-wrap: wrap; }
 .stat { background: white; border-radius: 8px; padding: 1rem 1.4rem; min-width: 10rem;
         box-shadow: 0 1px 3px #0002; }
 .stat .value { font-size: 1.8rem; font-weight: 600; }
 .stat .change, figcaption, .meta { color: #666; font-size: .85rem; }
 .charts { display: flex; flex-wrap: wrap; gap: 1rem; margin-top: 1.5rem; }
 figure { background: white; margin: 0; padding: .6rem; border-radius: 8px;
          box-shadow: 0 1px 3px #0002; }
 figure h2 { font-size: 1.05rem; font-weight: 600; margin: .2rem .4rem .4rem; }
 figure img { max-width: 100%; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="meta">{{ period }} · all branches ({{ branches }}) · generated {{ generated }}</p>
<div class="headlines">
{% for stat in headlines %}
 <div class="stat"><div>{{ stat.title }}</div><div class="value">{{ stat.value }}</div>
 <div class="change">{{ stat.change }}</div></div>
{% endfor %}
</div>
<div class="charts">
{% for chart in charts %}
 <figure><h2>{{ chart.title }}</h2><img src="{{ chart.file_name }}" alt="{{ chart.title }}">
 <figcaption>{{ chart.description }}</figcaption></figure>
{% endfor %}
</div>
</body>
</html>
"""


def _period(window: TimeRange) -> str:
    first = window.start.astimezone(CAFE_TIMEZONE).date()
    last = window.end.astimezone(CAFE_TIMEZONE).date()
    return f"{first:%d %b %Y} to {last:%d %b %Y}"


def render_report(settings: Settings, out_dir: Path) -> Path:
    """Render the business dashboard into `out_dir`; returns the path of `index.html`."""
    if not settings.database_url:
        raise ConfigurationError("no database: run `cafe up` or set CAFE_DATABASE_URL")
    dashboard = dashboard_json(cafe_sales.build, POSTGRES)
    try:
        connection = psycopg.connect(settings.database_url, autocommit=True)
    except psycopg.OperationalError as error:
        raise CafeError(f"cannot connect to the warehouse: {error}") from error
    with connection:
        try:
            window = sales_window(connection, POSTGRES.schema)
        except psycopg.errors.UndefinedTable as error:
            raise CafeError("the reporting marts do not exist yet: run `cafe build`") from error
        if window is None:
            raise CafeError("the reporting marts hold no sales: load files, then `cafe build`")
        variables: dict[str, Variable] = resolve_variables(connection, dashboard, POSTGRES, window)
        out_dir.mkdir(parents=True, exist_ok=True)
        headlines: list[Headline] = []
        charts: list[Chart] = []
        for panel in dashboard["panels"]:
            sql = panel["targets"][0][POSTGRES.sql_key]
            result = run_panel_sql(connection, sql, POSTGRES, window, variables)
            if panel["type"] == "stat":
                last_week = TimeRange(window.end - timedelta(days=7), window.end)
                compared = run_panel_sql(connection, sql, POSTGRES, last_week, variables)
                headlines.append(headline(panel, result, compared))
            else:
                charts.append(draw_panel(panel, result, out_dir))
    page = Environment(autoescape=select_autoescape(default=True)).from_string(PAGE)
    index = out_dir / "index.html"
    index.write_text(
        page.render(
            title=html.unescape(dashboard["title"]),
            period=_period(window),
            branches=", ".join(variables["branch"].selected),
            generated=datetime.now(CAFE_TIMEZONE).strftime("%d %b %Y %H:%M"),
            headlines=headlines,
            charts=charts,
            favicon=FAVICON,
        ),
        encoding="utf-8",
    )
    return index
