"""Pipeline health and its alerts on a ledger that moves after the last dbt build.

A private database gets one fresh export and a `dbt build` of the operations marts (with
their tests) and a `dbt source freshness`; then, with no build in between, the ledger
receives what the dashboard must show as it happens:

- exports of Malton 25 hours and Filey 27 hours ago (Filey is silent, Malton not yet);
- a Helmsley export with an unknown column `till_id` that arrived three days ago, and one
  today with `till_id` and `tip` (only `tip` is new);
- an older version of the fresh export arriving late (`stale`);
- load attempts that died (a `started` row never closed, left as a killed Lambda leaves
  it): one whose file a retry has since loaded, one never retried; and one still running.

Files go through the loader's own code path. The dead and running attempts, and the
three-day-old arrival, are written into the ledger directly (a load cannot be killed or
aged in a test's time), by copying the row a real load wrote.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from dashboard_helpers import alert_rule_sql, panel_target_sql
from psycopg import sql
from psycopg.rows import dict_row

from cafe.commands.build import run_dbt
from cafe.dashboards import pipeline_health
from cafe.dashboards.flavours import FLAVOURS, POSTGRES, REDSHIFT, Flavour
from cafe.dashboards.macros import TimeRange
from cafe.dashboards.provisioning import dashboard_json
from cafe.dashboards.queries import (
    QueryResult,
    panel_queries,
    run_panel_sql,
    run_sql,
    time_panel_queries,
)
from loader.hashing import load_card_key
from loader.service import load_path
from loader.settings import Settings
from loader.writers import open_warehouse

pytestmark = pytest.mark.slow  # loads and a dbt build on a database of its own

Connection = psycopg.Connection[Any]
CAFE_CLOCK = ZoneInfo("Europe/London")
EXPORT_HEADER = ("date", "location", "name", "basket", "total", "payment_type", "card_number")
PIPELINE_MARTS = (
    "+rpt_file_loads",
    "+rpt_branch_freshness",
    "+rpt_rejection_reasons_daily",
    "rpt_build_results",
)


@dataclasses.dataclass(frozen=True)
class LiveLedger:
    database_url: str
    built_before: datetime  # every dbt run started before this instant
    keys: dict[str, str]  # what each file or attempt stands for -> its source key


def _export(
    folder: Path,
    branch: str,
    hours_ago: float,
    extra_columns: tuple[str, ...] = (),
    *,
    price: str = "2.45",
    bad_lines: int = 0,
) -> Path:
    """A till export named for `hours_ago` on the café's clock, one sale an hour before."""
    exported = (datetime.now(UTC) - timedelta(hours=hours_ago)).astimezone(CAFE_CLOCK)
    sold = exported - timedelta(hours=1)
    extras = "".join(f",{index + 1}" for index in range(len(extra_columns)))
    good = f'{sold:%d/%m/%Y %H:%M},{branch},,"Large Latte - {price}",{price},CASH,{extras}'
    # 31 February: a line the loader rejects (reason field `date`).
    bad = [
        f'31/02/2024 10:0{i},{branch},,"Large Latte - 2.45",2.45,CASH,{extras}'
        for i in range(bad_lines)
    ]
    header = ",".join(EXPORT_HEADER + extra_columns)
    path = folder / f"{branch.lower()}_{exported:%d-%m-%Y_%H-%M-%S}.csv"
    path.write_bytes(("\r\n".join([header, good, *bad]) + "\r\n").encode())
    return path


def _load(settings: Settings, path: Path, expected: str) -> str:
    result = load_path(
        path, path.name, warehouse=open_warehouse(settings), key=load_card_key(settings)
    )
    assert result.status.value == expected, result
    return path.name


def _attempt_like(
    connection: Connection,
    template_key: str,
    source_key: str,
    branch: str,
    started_at: datetime,
) -> None:
    """A `started` ledger row of `source_key` begun at `started_at` and never closed, shaped
    by the row a real load of `template_key` wrote (as a killed loader leaves it)."""
    with connection.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(
            "select * from raw.loaded_files where source_key = %s and status = 'loaded'",
            (template_key,),
        ).fetchone()
        assert row is not None
        row |= {
            "load_id": str(uuid.uuid4()),
            "source_key": source_key,
            "branch_name": branch,
            "status": "started",
            "is_current": False,
            "rows_read": 0,
            "rows_loaded": 0,
            "rows_rejected": 0,
            "started_at": started_at,
            "finished_at": None,
        }
        if source_key != template_key:
            row["file_checksum"] = uuid.uuid4().hex * 2
        cursor.execute(
            sql.SQL("insert into raw.loaded_files ({}) values ({})").format(
                sql.SQL(", ").join(sql.Identifier(column) for column in row),
                sql.SQL(", ").join(sql.Placeholder() * len(row)),
            ),
            list(row.values()),
        )


@pytest.fixture(scope="module")
def live_ledger(
    stack: Settings, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveLedger]:
    name = f"live_ledger_{uuid.uuid4().hex[:10]}"
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = database_url.rsplit("/", 1)[0] + f"/{name}"
    settings = dataclasses.replace(stack, database_url=url, reporting_database_url=None)
    folder = tmp_path_factory.mktemp("live-ledger")
    try:
        # A rejected line too, so that every source a load writes has rows to be fresh.
        fresh = _export(folder, "Pickering", 1, bad_lines=1)
        keys = {"fresh": _load(settings, fresh, "loaded")}
        assert run_dbt(["build", "--select", *PIPELINE_MARTS], settings) == 0
        # Exit code 1 when a source is late (one no load writes may be empty); the results
        # are recorded either way.
        run_dbt(["source", "freshness"], settings)
        built_before = datetime.now(UTC)

        # From here on, no dbt: only the loader (and what a dead loader leaves).
        keys["nearly silent"] = _load(settings, _export(folder, "Malton", 25), "loaded")
        keys["silent"] = _load(settings, _export(folder, "Filey", 27, bad_lines=2), "loaded")
        keys["old drift"] = _load(settings, _export(folder, "Helmsley", 74, ("till_id",)), "loaded")
        keys["new drift"] = _load(
            settings, _export(folder, "Helmsley", 3, ("till_id", "tip")), "loaded"
        )
        older = folder / "older" / keys["fresh"]
        older.parent.mkdir()
        older.write_bytes(_export(folder / "older", "Pickering", 1, price="2.55").read_bytes())
        two_days_ago = (datetime.now(UTC) - timedelta(days=2)).timestamp()
        os.utime(older, (two_days_ago, two_days_ago))
        keys["stale"] = _load(settings, older, "stale")
        keys["died, retried"] = _load(settings, _export(folder, "Thirsk", 5), "loaded")
        now = datetime.now(UTC)
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(
                "update raw.loaded_files set started_at = %s, finished_at = %s"
                " where source_key = %s",
                (now - timedelta(days=3), now - timedelta(days=3, seconds=-2), keys["old drift"]),
            )
            keys["died"] = "ripon_01-05-2024_09-00-00.csv"
            keys["running"] = "whitby_01-05-2024_09-00-00.csv"
            for key, branch, started_at in (
                (keys["died, retried"], "Thirsk", now - timedelta(hours=2)),
                (keys["died"], "Ripon", now - timedelta(hours=3)),
                (keys["running"], "Whitby", now - timedelta(minutes=1)),
            ):
                _attempt_like(connection, keys["died, retried"], key, branch, started_at)
        yield LiveLedger(url, built_before, keys)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="module")
def connection(live_ledger: LiveLedger) -> Iterator[Connection]:
    with psycopg.connect(live_ledger.database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def last_week() -> TimeRange:
    now = datetime.now(UTC).replace(microsecond=0)
    return TimeRange(now - timedelta(days=7), now + timedelta(minutes=5))


def _alert(
    connection: Connection, flavour: Flavour, uid: str, window: TimeRange
) -> dict[str, float]:
    """label -> value of each alert instance the rule's query yields, and which of them fire."""
    query, threshold = alert_rule_sql(flavour, uid)
    result = run_panel_sql(connection, query, flavour, window, {})
    assert [c.is_numeric for c in result.columns] == [False, True], uid
    return {label: value for label, value in result.rows if value > threshold}


def _panel(connection: Connection, flavour: Flavour, title: str, window: TimeRange) -> QueryResult:
    query = panel_target_sql(pipeline_health.UID, flavour, title)
    return run_panel_sql(connection, query, flavour, window, {})


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.name)
def test_silent_branch_alert_fires_27_hours_after_the_last_export_with_no_build_since(
    flavour: Flavour, connection: Connection, live_ledger: LiveLedger, last_week: TimeRange
) -> None:
    latest_run = run_sql(
        connection, "SELECT max(run_started_at_utc) FROM reporting.rpt_build_results"
    ).rows[0][0]
    assert latest_run < live_ledger.built_before, "no dbt run after the scenario's loads"
    # Filey's only export is 27 hours old, Malton's 25: only Filey is silent.
    assert _alert(connection, flavour, "cafe-branch-silent", last_week) == {"Filey": 1}
    hours = {
        row["Branch"]: row["Hours since last file"]
        for row in _panel(connection, flavour, "Freshness per branch", last_week).as_dicts()
    }
    assert set(hours) == {"Pickering", "Malton", "Filey", "Helmsley", "Thirsk"}
    assert 26.9 < hours["Filey"] < 27.5 and 24.9 < hours["Malton"] < 25.5
    assert next(iter(hours)) == "Filey", "stalest first"


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.name)
def test_new_column_alert_fires_for_a_column_never_seen_before_only(
    flavour: Flavour, connection: Connection, last_week: TimeRange
) -> None:
    # Whole seconds, as the Redshift plugin renders them, past the second of the last load.
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    last_day = TimeRange(now - timedelta(days=1), now)
    # Today's Helmsley file brought `till_id` (seen three days ago) and `tip` (never seen).
    assert _alert(connection, flavour, "cafe-new-column", last_day) == {"tip": 1}
    three_days_ago = TimeRange(now - timedelta(days=3, hours=1), now - timedelta(days=2))
    assert _alert(connection, flavour, "cafe-new-column", three_days_ago) == {"till_id": 2}


def test_column_drift_shows_each_column_with_when_it_was_first_seen(
    connection: Connection, live_ledger: LiveLedger, last_week: TimeRange
) -> None:
    rows = list(_panel(connection, POSTGRES, "Column drift", last_week).as_dicts())
    assert [(r["Column"], r["Files"], r["Branches"], r["Latest file"]) for r in rows] == [
        ("tip", 1, 1, live_ledger.keys["new drift"]),
        ("till_id", 2, 1, live_ledger.keys["new drift"]),
    ]
    tip, till_id = rows
    assert tip["First seen"] == tip["Last seen"] == till_id["Last seen"]
    assert (
        timedelta(days=2, hours=23)
        < tip["First seen"] - till_id["First seen"]
        < timedelta(days=3, minutes=5)
    )
    # A range that ends before today's file lists what arrived in it: till_id, whose
    # history (files, last seen) is still the whole of it.
    before_today = TimeRange(last_week.start, datetime.now(UTC) - timedelta(days=1))
    rows = list(_panel(connection, POSTGRES, "Column drift", before_today).as_dicts())
    assert [(r["Column"], r["Files"]) for r in rows] == [("till_id", 2)]


def test_files_per_hour_counts_stale_running_and_died_attempts(
    connection: Connection, last_week: TimeRange
) -> None:
    result = _panel(connection, POSTGRES, "Files per hour", last_week)
    totals = {
        column.name: sum(result.column(column.name))
        for column in result.columns
        if column.name != "time"
    }
    assert totals == {
        "Loaded": 6,  # Pickering, Malton, Filey, Helmsley twice, Thirsk
        "Replaced": 0,
        "Duplicate": 0,
        "Stale": 1,
        "Running": 1,
        "Died": 2,
        "Failed": 0,
    }


def test_failed_loads_list_dead_attempts_with_the_files_latest_attempt(
    connection: Connection, live_ledger: LiveLedger, last_week: TimeRange
) -> None:
    for flavour in FLAVOURS:
        rows = list(_panel(connection, flavour, "Failed loads", last_week).as_dicts())
        assert [(r["File"], r["Outcome"], r["Latest attempt"]) for r in rows] == [
            (live_ledger.keys["died, retried"], "died", "loaded"),  # two hours ago
            (live_ledger.keys["died"], "died", "died"),  # three hours ago, never retried
        ]
        assert all("never finished" in r["Error"] for r in rows)


def _insert_build(
    connection: Connection, started: datetime, results: list[tuple[str, str, str, int | None]]
) -> None:
    """One `dbt build` in rpt_build_results, shaped as record_run_results writes it."""
    invocation = str(uuid.uuid4())
    for node, kind, status, failures in results:
        resource_type = "model" if kind == "build" else "test"
        connection.execute(
            "insert into reporting.rpt_build_results (invocation_id, command, target_name,"
            " run_started_at_utc, recorded_at_utc, unique_id, resource_type, node_name,"
            " tested_node, check_kind, status, failures, failures_relation, max_loaded_at_utc,"
            " age_hours, execution_seconds) values (%s, 'build', 'local', %s, %s, %s, %s, %s,"
            " %s, %s, %s, %s, null, null, null, 0.1)",
            (
                invocation,
                started,
                started + timedelta(minutes=1),
                f"{resource_type}.cafe_elt.{node}",
                resource_type,
                node,
                None if kind == "build" else "fct_transactions",
                kind,
                status,
                failures,
            ),
        )


def test_integrity_alert_and_build_checks_follow_the_latest_build(
    connection: Connection, last_week: TimeRange
) -> None:
    for flavour in FLAVOURS:
        assert _alert(connection, flavour, "cafe-build-integrity", last_week) == {}
    now = datetime.now(UTC)
    with connection.transaction(force_rollback=True):
        # An earlier build's failure is history: only the latest build counts.
        _insert_build(connection, now - timedelta(days=3), [("unique_old", "integrity", "fail", 4)])
        for flavour in FLAVOURS:
            assert _alert(connection, flavour, "cafe-build-integrity", last_week) == {}
        _insert_build(
            connection,
            now,
            [
                ("fct_transactions", "build", "success", None),
                ("rpt_daily_branch_sales", "build", "skipped", None),
                ("unique_fct_transactions_id", "integrity", "fail", 3),
                ("relationships_fct_items", "integrity", "error", None),
                ("accepted_values_payment", "data_value", "warn", 5),
                ("not_null_fct_transactions_id", "integrity", "pass", 0),
            ],
        )
        for flavour in FLAVOURS:
            # Integrity failures alert (an error that found no rows counts once); a
            # data-value warning does not.
            assert _alert(connection, flavour, "cafe-build-integrity", last_week) == {
                "unique_fct_transactions_id": 3,
                "relationships_fct_items": 1,
            }
            rows = list(_panel(connection, flavour, "Build checks", last_week).as_dicts())
            checks = [(r["Check"], r["Status"]) for r in rows if r["Kind"] != "freshness"]
            assert checks == [
                ("relationships_fct_items", "error"),
                ("unique_fct_transactions_id", "fail"),
                ("accepted_values_payment", "warn"),
                ("rpt_daily_branch_sales", "skipped"),
                ("not_null_fct_transactions_id", "pass"),
            ]
            # The latest freshness run is still shown beside the new build.
            assert {r["Check"] for r in rows if r["Kind"] == "freshness"} >= {
                "till.transactions",
                "till.loaded_files",
                "till.rejected_rows",
            }
    for flavour in FLAVOURS:
        assert _alert(connection, flavour, "cafe-build-integrity", last_week) == {}


def test_every_pipeline_panel_shows_rows_and_both_flavours_agree(
    connection: Connection, last_week: TimeRange
) -> None:
    by_flavour: dict[str, dict[str, QueryResult]] = {}
    for flavour in FLAVOURS:
        dashboard = dashboard_json(pipeline_health.build, flavour)
        by_flavour[flavour.name] = {
            query.panel_title: run_panel_sql(connection, query.sql, flavour, last_week, {})
            for query in panel_queries(dashboard, flavour)
        }
    postgres, redshift = by_flavour[POSTGRES.name], by_flavour[REDSHIFT.name]
    assert set(postgres) == set(redshift)
    for title, result in postgres.items():
        assert result.rows, title
        assert result.rows == redshift[title].rows, title


def test_time_panel_queries_times_every_sql_panel(
    connection: Connection, last_week: TimeRange
) -> None:
    dashboard = dashboard_json(pipeline_health.build, POSTGRES)
    timings = time_panel_queries(connection, dashboard, POSTGRES, last_week, repeat=2)
    assert [(t.panel_title, t.ref_id) for t in timings] == [
        (q.panel_title, q.ref_id) for q in panel_queries(dashboard, POSTGRES)
    ]
    assert {t.panel_title for t in timings} >= {"Build checks", "Column drift", "Failed loads"}
    for timing in timings:
        assert 0 < timing.seconds < 10 and timing.rows > 0, timing
    with pytest.raises(ValueError):
        time_panel_queries(connection, dashboard, POSTGRES, last_week, repeat=0)
