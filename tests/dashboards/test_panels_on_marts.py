"""Every SQL panel and alert query of both flavours runs on marts built from real loads.

Both flavours' SQL is expanded with its own plugin's macro rules and run on PostgreSQL
(the Redshift flavour is plain SQL after expansion); each result must have the columns its
panel type needs, and the two flavours must agree row for row.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from conftest import Marts
from dashboard_helpers import SqlPanelQuery, alert_documents, marts_read, sql_panel_queries

from cafe.dashboards import cafe_sales
from cafe.dashboards.flavours import FLAVOURS, POSTGRES, REDSHIFT, Flavour
from cafe.dashboards.macros import TimeRange, Variable
from cafe.dashboards.provisioning import dashboard_json
from cafe.dashboards.queries import QueryResult, resolve_variables, run_panel_sql, run_sql

Connection = psycopg.Connection[Any]
QUERIES = sql_panel_queries()


@pytest.fixture(scope="session")
def whole_period(marts_connection: Connection) -> TimeRange:
    """From the first trading day in the marts to tomorrow: sales and today's loads."""
    result = run_sql(
        marts_connection, "SELECT min(day_start_utc) FROM reporting.rpt_daily_branch_sales"
    )
    (start,) = result.rows[0]
    # Whole seconds, as both plugins render them (PostgreSQL would keep fractions).
    return TimeRange(start, datetime.now(UTC).replace(microsecond=0) + timedelta(days=1))


def _variables(connection: Connection, flavour: Flavour, window: TimeRange) -> dict[str, Variable]:
    variables: dict[str, Variable] = {}
    for build in (cafe_sales.build,):
        variables |= resolve_variables(connection, dashboard_json(build, flavour), flavour, window)
    variables["lambda_function"] = Variable("lambda_function", ("cafe-elt-loader",))
    return variables


def _assert_shape(query: SqlPanelQuery, result: QueryResult) -> None:
    columns = result.columns
    numbers = [c for c in columns if c.is_numeric and c.name != "time"]
    labels = [c for c in columns if not c.is_numeric and not c.is_time]
    assert result.rows, f"{query} returned no rows"
    if query.panel_type == "timeseries":
        time = next(c for c in columns if c.name == "time")
        assert time.is_time or time.is_numeric, "the time column must be a time or epoch seconds"
        assert numbers, "a time series needs a numeric column"
    elif query.panel_type == "stat":
        assert numbers, "a stat needs a numeric column"
    elif query.panel_type == "heatmap":
        assert [c.name for c in columns if c.is_time] == ["time"], "x: one time column"
        assert [c.name for c in labels] == ["metric"], "y: the bucket label"
        assert len(numbers) == 1, "value: one number per cell"
    elif query.panel_type in ("piechart", "bargauge"):
        assert labels and numbers, "a label and a numeric value per row"
    else:
        assert query.panel_type == "table"


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_panel_query_returns_what_its_panel_needs(
    query: SqlPanelQuery, marts_connection: Connection, whole_period: TimeRange
) -> None:
    variables = _variables(marts_connection, query.flavour, whole_period)
    result = run_panel_sql(marts_connection, query.sql, query.flavour, whole_period, variables)
    _assert_shape(query, result)


def test_both_flavours_return_the_same_rows(
    marts_connection: Connection, whole_period: TimeRange
) -> None:
    by_panel: dict[tuple[str, str], dict[str, QueryResult]] = {}
    for query in QUERIES:
        variables = _variables(marts_connection, query.flavour, whole_period)
        result = run_panel_sql(marts_connection, query.sql, query.flavour, whole_period, variables)
        by_panel.setdefault((query.dashboard_uid, query.panel_title), {})[query.flavour.name] = (
            result
        )
    for panel, results in by_panel.items():
        postgres, redshift = results[POSTGRES.name], results[REDSHIFT.name]
        assert postgres.rows == redshift.rows, panel


def _stat_sql(title: str) -> str:
    dashboard = dashboard_json(cafe_sales.build, POSTGRES)
    panel = next(p for p in dashboard["panels"] if p["title"] == title)
    sql = panel["targets"][0][POSTGRES.sql_key]
    assert isinstance(sql, str)
    return sql


def _revenue_between(
    connection: Connection, start: datetime, end: datetime, branches: list[str]
) -> float:
    result = run_sql(
        connection,
        "SELECT coalesce(sum(revenue), 0) FROM reporting.rpt_daily_branch_sales "
        f"WHERE day_start_utc >= '{start.isoformat()}' AND day_start_utc < '{end.isoformat()}' "
        f"AND branch_name IN ({','.join(repr(b) for b in branches)})",
    )
    return float(result.rows[0][0])


def test_headline_compares_with_the_previous_period_of_the_same_length(
    marts_connection: Connection, marts: Marts
) -> None:
    branches = run_sql(
        marts_connection, "SELECT DISTINCT branch_name FROM reporting.rpt_daily_branch_sales"
    ).column("branch_name")
    one = "Leeds"  # a generated branch, trading every day of the window
    assert one in branches
    # The second generated week, in café local days (midnight BST = 23:00 UTC).
    start = datetime(2024, 3, 31, 23, 0, tzinfo=UTC)
    window = TimeRange(start, start + timedelta(days=7))
    variables = {"branch": Variable("branch", (one,), multi=True, include_all=True)}
    for flavour in FLAVOURS:
        result = run_panel_sql(marts_connection, _stat_sql("Revenue"), flavour, window, variables)
        (previous_start, previous), (current_start, current) = result.rows
        assert previous_start.replace(tzinfo=UTC) == start - timedelta(days=7)
        assert current_start.replace(tzinfo=UTC) == start
        assert current == pytest.approx(
            _revenue_between(marts_connection, start, window.end, [one])
        )
        assert previous == pytest.approx(
            _revenue_between(marts_connection, start - timedelta(days=7), start, [one])
        )
        assert 0 < current < _revenue_between(marts_connection, start, window.end, branches)


def test_footfall_peaks_in_the_morning_or_at_lunch(
    marts_connection: Connection, whole_period: TimeRange
) -> None:
    dashboard = dashboard_json(cafe_sales.build, POSTGRES)
    panel = next(p for p in dashboard["panels"] if p["title"] == "Footfall by weekday and hour")
    variables = _variables(marts_connection, POSTGRES, whole_period)
    result = run_panel_sql(
        marts_connection, panel["targets"][0]["rawSql"], POSTGRES, whole_period, variables
    )
    by_hour: dict[str, float] = {}
    for row in result.as_dicts():
        by_hour[row["Hour"]] = by_hour.get(row["Hour"], 0) + row["Transactions"]
    busiest = max(by_hour, key=lambda hour: by_hour[hour])
    assert busiest in {"08:00", "09:00", "12:00", "13:00"}, by_hour


def _alert_sql(flavour: Flavour, uid: str) -> tuple[str, int]:
    group = alert_documents()[flavour.name]["groups"][0]
    rule = next(r for r in group["rules"] if r["uid"] == uid)
    query = rule["data"][0]
    threshold = rule["data"][1]["model"]["conditions"][0]["evaluator"]["params"][0]
    # Undo the provisioning escape exactly as Grafana's interpolation does.
    return query["model"][flavour.sql_key].replace("$$", "$"), threshold


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.name)
def test_alert_queries_run_and_fire_where_they_should(
    flavour: Flavour, marts_connection: Connection, marts: Marts
) -> None:
    last_day = TimeRange(datetime.now(UTC) - timedelta(days=1), datetime.now(UTC))
    sql, threshold = _alert_sql(flavour, "cafe-rejected-rows")
    rejected = {
        row[0]: row[1] for row in run_panel_sql(marts_connection, sql, flavour, last_day, {}).rows
    }
    firing = {branch for branch, count in rejected.items() if count > threshold}
    assert rejected[marts.broken_branch] == marts.broken_lines
    assert firing == {marts.broken_branch}

    sql, threshold = _alert_sql(flavour, "cafe-branch-silent")
    silent = run_panel_sql(marts_connection, sql, flavour, last_day, {})
    assert [c.is_numeric for c in silent.columns] == [False, True]
    # Every export in the test data is dated weeks or years ago: every branch is silent.
    assert silent.rows and all(value > threshold for _, value in silent.rows)


def test_reporting_role_can_read_every_mart_a_dashboard_uses(marts: Marts) -> None:
    assert marts.settings.reporting_database_url, "the stack provisions a reporting role"
    tables = marts_read(QUERIES)
    with psycopg.connect(marts.settings.reporting_database_url, autocommit=True) as connection:
        for table in sorted(tables):
            connection.execute(f"SELECT 1 FROM reporting.{table} LIMIT 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("SELECT 1 FROM raw.transactions LIMIT 1")
