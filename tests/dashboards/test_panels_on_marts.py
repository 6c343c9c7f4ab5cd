"""Every SQL panel and alert query of both flavours runs on marts built from real loads.

Both flavours' SQL is expanded with its own plugin's macro rules and run on PostgreSQL
(the Redshift flavour is plain SQL after expansion); each result must have the columns its
panel type needs, and the two flavours must agree row for row.

Pipeline health also reads history beyond the sales: the results of dbt's checks and of
`dbt source freshness`, and a file whose header has a column the loader does not know. The
session's built warehouse (tests/conftest.py) holds them: its build ran with tests, then a
freshness run, and it loaded a Leeds file with a `tip` column.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from dashboard_helpers import (
    Marts,
    SqlPanelQuery,
    alert_rule_sql,
    marts_read,
    panel_target_sql,
    sql_panel_queries,
)

from cafe.dashboards import cafe_sales, pipeline_health
from cafe.dashboards.flavours import FLAVOURS, POSTGRES, REDSHIFT, Flavour
from cafe.dashboards.macros import TimeRange, Variable
from cafe.dashboards.provisioning import dashboard_json
from cafe.dashboards.queries import QueryResult, resolve_variables, run_panel_sql, run_sql

Connection = psycopg.Connection[Any]
QUERIES = sql_panel_queries()
DRIFT_COLUMN = "tip"  # the unknown column of the built warehouse's Leeds file
# The sources every load writes (others may be empty, hence late, in the test data).
LEDGER_SOURCES = {"till.transactions", "till.loaded_files", "till.rejected_rows"}
WORST_FIRST = ("error", "runtime error", "fail", "warn", "skipped", "pass")


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


def _firing(
    connection: Connection, flavour: Flavour, uid: str, window: TimeRange
) -> dict[str, float]:
    """label -> value of every instance an alert rule's query yields, and which fire."""
    sql, threshold = alert_rule_sql(flavour, uid)
    result = run_panel_sql(connection, sql, flavour, window, {})
    # Grafana's SQL alerting: string columns are the labels, the one numeric column the value.
    assert [c.is_numeric for c in result.columns] == [False, True], uid
    return {label: value for label, value in result.rows if value > threshold}


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.name)
def test_alert_queries_run_and_fire_where_they_should(
    flavour: Flavour, marts_connection: Connection, marts: Marts
) -> None:
    # Whole seconds, as the Redshift plugin renders them, past the second of the last load.
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    last_day = TimeRange(now - timedelta(days=1), now)
    sql, _ = alert_rule_sql(flavour, "cafe-rejected-rows")
    rejected = {
        row[0]: row[1] for row in run_panel_sql(marts_connection, sql, flavour, last_day, {}).rows
    }
    assert rejected[marts.broken_branch] == marts.broken_lines
    assert _firing(marts_connection, flavour, "cafe-rejected-rows", last_day) == {
        marts.broken_branch: marts.broken_lines
    }

    silent = _firing(marts_connection, flavour, "cafe-branch-silent", last_day)
    # Every export in the test data is dated weeks or years ago: every branch is silent.
    branches = run_sql(marts_connection, "SELECT branch_name FROM reporting.rpt_branch_freshness")
    assert set(silent) == set(branches.column("branch_name")) and len(silent) >= 3

    # The Leeds file with a `tip` column arrived minutes ago: a column never seen before.
    assert _firing(marts_connection, flavour, "cafe-new-column", last_day) == {DRIFT_COLUMN: 1}
    # Yesterday's window does not hold its arrival: nothing new then.
    day_before = TimeRange(last_day.start - timedelta(days=1), last_day.start)
    assert _firing(marts_connection, flavour, "cafe-new-column", day_before) == {}

    # Every integrity check of the latest build passed (its data-value warnings do not count).
    assert _firing(marts_connection, flavour, "cafe-build-integrity", last_day) == {}


def _build_checks(connection: Connection, flavour: Flavour, window: TimeRange) -> QueryResult:
    sql = panel_target_sql(pipeline_health.UID, flavour, "Build checks")
    return run_panel_sql(connection, sql, flavour, window, {})


def test_build_checks_show_the_latest_build_and_freshness_run_worst_first(
    marts_connection: Connection, whole_period: TimeRange
) -> None:
    result = _build_checks(marts_connection, POSTGRES, whole_period)
    rows = list(result.as_dicts())
    latest_build = run_sql(
        marts_connection,
        "SELECT node_name, check_kind, status FROM reporting.rpt_build_results"
        " WHERE run_started_at_utc = (SELECT max(run_started_at_utc)"
        " FROM reporting.rpt_build_results WHERE command = 'build')"
        " AND resource_type IN ('test', 'unit_test')",
    )
    tests = {(r["node_name"], r["check_kind"], r["status"]) for r in latest_build.as_dicts()}
    assert {"integrity", "data_value"} <= {kind for _, kind, _ in tests}
    sources = set(
        run_sql(
            marts_connection,
            "SELECT node_name FROM reporting.rpt_build_results"
            " WHERE run_started_at_utc = (SELECT max(run_started_at_utc)"
            " FROM reporting.rpt_build_results WHERE command = 'freshness')",
        ).column("node_name")
    )
    assert sources >= LEDGER_SOURCES
    freshness = {r["Check"]: r for r in rows if r["Kind"] == "freshness"}
    assert set(freshness) == sources
    # Every test of the latest build and every source of the freshness run, and
    # nothing else: the build's models all succeeded, its exposures are no checks.
    assert {(r["Check"], r["Kind"], r["Status"]) for r in rows if r["Kind"] != "freshness"} == (
        tests
    )
    assert len(rows) == len(tests) + len(sources)
    # Freshness is judged on load times (minutes ago here), in hours since the last load.
    for source in LEDGER_SOURCES:
        assert freshness[source]["Status"] == "pass"
        assert 0 <= freshness[source]["Hours since load"] < 1
    assert all(r["Run started"] is not None for r in rows)
    ranks = [WORST_FIRST.index(r["Status"]) for r in rows]
    assert ranks == sorted(ranks), [r["Status"] for r in rows]


def test_column_drift_lists_each_unknown_column_with_its_files(
    marts_connection: Connection, whole_period: TimeRange
) -> None:
    for flavour in FLAVOURS:
        sql = panel_target_sql(pipeline_health.UID, flavour, "Column drift")
        rows = list(run_panel_sql(marts_connection, sql, flavour, whole_period, {}).as_dicts())
        assert [(r["Column"], r["Files"], r["Branches"]) for r in rows] == [(DRIFT_COLUMN, 1, 1)]
        assert rows[0]["Latest file"] == "leeds_20-03-2024_18-45-00.csv"
        assert rows[0]["First seen"] == rows[0]["Last seen"]


def test_reporting_role_can_read_every_mart_a_dashboard_uses(marts: Marts) -> None:
    assert marts.settings.reporting_database_url, "the stack provisions a reporting role"
    tables = marts_read(QUERIES)
    with psycopg.connect(marts.settings.reporting_database_url, autocommit=True) as connection:
        for table in sorted(tables):
            connection.execute(f"SELECT 1 FROM reporting.{table} LIMIT 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("SELECT 1 FROM raw.transactions LIMIT 1")
