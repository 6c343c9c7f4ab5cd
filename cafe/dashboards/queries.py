"""Run a dashboard's SQL the way Grafana would, against a PostgreSQL warehouse.

Used by `cafe report` (the business dashboard without Grafana), by the tests that prove
every panel query runs on the marts, and by the benchmarks (`time_panel_queries`: each
panel query's wall time, to find the slowest panel). Variables are resolved like a freshly
opened dashboard: each query variable is "All" of the options its own query returns; text
boxes keep their default.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from cafe.dashboards.flavours import Flavour
from cafe.dashboards.macros import TimeRange, Variable, render

# PostgreSQL type OIDs of the values a panel can plot against time or as a number.
_TIME_OIDS = frozenset({1082, 1114, 1184})  # date, timestamp, timestamptz
_NUMERIC_OIDS = frozenset({20, 21, 23, 700, 701, 1700})  # int8/2/4, float4/8, numeric


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int

    @property
    def is_time(self) -> bool:
        return self.type_oid in _TIME_OIDS

    @property
    def is_numeric(self) -> bool:
        return self.type_oid in _NUMERIC_OIDS


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]

    def column(self, name: str) -> list[Any]:
        index = [c.name for c in self.columns].index(name)
        return [row[index] for row in self.rows]

    def as_dicts(self) -> Iterator[dict[str, Any]]:
        names = [c.name for c in self.columns]
        for row in self.rows:
            yield dict(zip(names, row, strict=True))


def plain(value: Any) -> Any:
    """Decimal to float, everything else unchanged: the numbers Grafana would plot."""
    return float(value) if isinstance(value, Decimal) else value


def run_sql(connection: psycopg.Connection[Any], sql: str) -> QueryResult:
    with connection.cursor() as cursor:
        cursor.execute(sql.encode())
        description = cursor.description or []
        columns = tuple(Column(d.name, d.type_code) for d in description)
        rows = tuple(tuple(plain(v) for v in row) for row in cursor.fetchall())
    return QueryResult(columns, rows)


def run_panel_sql(
    connection: psycopg.Connection[Any],
    sql: str,
    flavour: Flavour,
    window: TimeRange,
    variables: Mapping[str, Variable],
) -> QueryResult:
    return run_sql(connection, render(sql, flavour.name, window, variables))


def resolve_variables(
    connection: psycopg.Connection[Any],
    dashboard: Mapping[str, Any],
    flavour: Flavour,
    window: TimeRange,
) -> dict[str, Variable]:
    """Every template variable as on a freshly opened dashboard ("All" for query variables)."""
    resolved: dict[str, Variable] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable["type"] == "query":
            query = variable["query"]
            sql = query if isinstance(query, str) else query[flavour.sql_key]
            result = run_panel_sql(connection, sql, flavour, window, resolved)
            options = [str(row[0]) for row in result.rows]
            resolved[name] = Variable.all_of(name, options)
        elif variable["type"] in ("textbox", "constant", "custom"):
            resolved[name] = Variable(name, (str(variable.get("query", "")),))
    return resolved


def sales_window(connection: psycopg.Connection[Any], schema: str) -> TimeRange | None:
    """The whole trading period in the marts: first local day start to the end of the last day."""
    result = run_sql(
        connection,
        f"SELECT min(day_start_utc), max(day_start_utc) + interval '1 day' "
        f"FROM {schema}.rpt_daily_branch_sales",
    )
    start, end = result.rows[0]
    if start is None:
        return None
    return TimeRange(_aware(start), _aware(end))


def _aware(value: datetime | date) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamptz, got {value!r}")
    return value


@dataclass(frozen=True)
class PanelQuery:
    """One SQL target of a dashboard panel, as the flavour's datasource stores it."""

    panel_title: str
    ref_id: str
    sql: str


@dataclass(frozen=True)
class PanelTiming:
    panel_title: str
    ref_id: str
    seconds: float
    rows: int


def panel_queries(dashboard: Mapping[str, Any], flavour: Flavour) -> list[PanelQuery]:
    """Every SQL target on the flavour's warehouse datasource, in panel order (CloudWatch and
    other datasources are left out)."""
    found = []
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            if target.get("datasource", {}).get("uid") == flavour.datasource.uid:
                found.append(PanelQuery(panel["title"], target["refId"], target[flavour.sql_key]))
    return found


def time_panel_queries(
    connection: psycopg.Connection[Any],
    dashboard: Mapping[str, Any],
    flavour: Flavour,
    window: TimeRange,
    *,
    repeat: int = 1,
) -> list[PanelTiming]:
    """Run every panel query of `dashboard` over `window` as Grafana would and time each.

    Variables are resolved first (not timed), as on a freshly opened dashboard. A query's
    time is the wall time from sending the SQL to holding every row in Python, the fastest
    of `repeat` runs; `rows` is how many rows it returned. On a Redshift flavour the SQL
    is that plugin's expansion, so `connection` must reach a warehouse that runs it.
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    variables = resolve_variables(connection, dashboard, flavour, window)
    timings = []
    for query in panel_queries(dashboard, flavour):
        sql = render(query.sql, flavour.name, window, variables)
        fastest, rows = math.inf, 0
        for _ in range(repeat):
            started = time.perf_counter()
            rows = len(run_sql(connection, sql).rows)
            fastest = min(fastest, time.perf_counter() - started)
        timings.append(PanelTiming(query.panel_title, query.ref_id, fastest, rows))
    return timings
