"""The customer models' incremental builds follow first visits wherever they move.

A handful of hand-written exports over three ISO weeks and two branches, so that each
change touches exactly one thing, and after each incremental build a copy of the database
is built in full and compared model by model:

1. A re-export takes back Ann's first visit (Leeds, week 1). Her first visit moves to a
   file no build has changed (York, week 2): the new-customer count of a (week, branch) no
   changed row lies in, and the week-2 cohort's size, must move with it.
2. Cy comes back in week 3 to a new file, and Bo's card is erased (`cafe forget`'s
   statements): Bo leaves every customer model and every cohort, his sales stay.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dbt_helpers import AS_SCHEDULED, assert_dbt_ok, load_files, run_dbt_captured
from psycopg import sql

from loader.hashing import CardKeys, load_card_key
from loader.privacy.erasure import forget_card
from loader.privacy.store import PostgresStore
from loader.settings import Settings
from tests.dbt.test_dbt_incremental import (
    HISTORY_MODELS,
    fingerprint,
    incremental_models,
)

pytestmark = pytest.mark.slow  # five dbt runs on databases of their own

HEADER = "date,location,name,basket,total,payment_type,card_number"
ANN, BO, CY = "4111111111111111", "5500005555555559", "4012888888881881"
LATTE = "Regular Latte - 2.15,2.15"


def export(folder: Path, branch: str, day: str, lines: list[tuple[str, str]]) -> Path:
    """One export of `branch` on `day` (dd-mm-YYYY): (time, card) per line, a latte each."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{branch.lower()}_{day}_18-00-00.csv"
    date = day.replace("-", "/")
    rows = [
        f"{date} {time},{branch},N,{LATTE},CARD,{card}"
        if card
        else f"{date} {time},{branch},,{LATTE},CASH,"
        for time, card in lines
    ]
    path.write_text("\r\n".join([HEADER, *rows]) + "\r\n", newline="")
    return path


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchall()


@pytest.fixture
def full_copy(fresh_database_url: str) -> Iterator[Any]:
    """Build a copy of the database in full: `full_copy(settings)` returns its URL. Each
    call replaces the copy before it under the same name: dbt re-reads the whole project
    for a database it has not seen, and reads it once for one it has."""
    admin = fresh_database_url.rsplit("/", 1)[0] + "/postgres"
    copies: set[str] = set()

    def build(settings: Settings) -> str:
        assert settings.database_url
        original = settings.database_url.rsplit("/", 1)[1]
        name = f"{original}_full"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
            connection.execute(
                sql.SQL("create database {} template {}").format(
                    sql.Identifier(name), sql.Identifier(original)
                )
            )
        copies.add(name)
        url = settings.database_url.rsplit("/", 1)[0] + f"/{name}"
        copy = dataclasses.replace(settings, database_url=url)
        # Models only: the copy's tests ran on the incremental side already.
        assert_dbt_ok(run_dbt_captured(copy, "run", "--full-refresh"))
        return url

    yield build
    with psycopg.connect(admin, autocommit=True) as connection:
        for name in copies:
            connection.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def assert_equals_full_build(settings: Settings, full_copy: Any) -> None:
    assert settings.database_url
    models = incremental_models(settings)
    full_url = full_copy(settings)
    differ = []
    with (
        psycopg.connect(settings.database_url) as incremental,
        psycopg.connect(full_url) as full,
    ):
        for name, relation in models.items():
            if name in HISTORY_MODELS:
                continue
            if fingerprint(incremental, relation, name) != fingerprint(full, relation, name):
                differ.append(name)
    assert differ == [], f"incremental and full builds differ: {differ}"


def test_first_visits_cohorts_and_erasures_follow_incrementally(
    stack: Settings, fresh_database_url: str, full_copy: Any, tmp_path: Path
) -> None:
    url = fresh_database_url
    settings = dataclasses.replace(stack, database_url=url)
    first_leeds = [("09:00", ANN), ("09:10", CY), ("09:20", "")]
    load_files(
        settings,
        [
            export(tmp_path, "Leeds", "06-01-2025", first_leeds),
            export(tmp_path, "York", "07-01-2025", [("10:00", BO)]),
            export(tmp_path, "York", "14-01-2025", [("09:00", ANN), ("09:30", BO)]),
            export(tmp_path, "Leeds", "15-01-2025", [("09:00", CY)]),
            export(tmp_path, "Leeds", "21-01-2025", [("11:00", BO)]),
        ],
    )
    assert_dbt_ok(run_dbt_captured(settings, "build", *AS_SCHEDULED))
    weekly = (
        "select week_start_local::text, branch_name, new_customers, returning_customers"
        " from reporting.rpt_customers_weekly order by 1, 2"
    )
    assert rows(url, weekly) == [
        ("2025-01-06", "Leeds", 2, 0),
        ("2025-01-06", "York", 1, 0),
        ("2025-01-13", "Leeds", 0, 1),
        ("2025-01-13", "York", 0, 2),
        ("2025-01-20", "Leeds", 0, 1),
    ]

    # 1. Ann's first visit is taken back: she is new in week 2 at York.
    load_files(settings, [export(tmp_path / "corrected", "Leeds", "06-01-2025", first_leeds[1:])])
    assert_dbt_ok(run_dbt_captured(settings, "build", *AS_SCHEDULED))
    assert rows(url, weekly) == [
        ("2025-01-06", "Leeds", 1, 0),
        ("2025-01-06", "York", 1, 0),
        ("2025-01-13", "Leeds", 0, 1),
        ("2025-01-13", "York", 1, 1),
        ("2025-01-20", "Leeds", 0, 1),
    ]
    assert rows(
        url,
        "select cohort_week_local::text, weeks_since_first, cohort_size, active_customers"
        " from reporting.rpt_cohort_retention order by 1, 2",
    ) == [
        ("2025-01-06", 0, 2, 2),
        ("2025-01-06", 1, 2, 2),
        ("2025-01-06", 2, 2, 1),
        ("2025-01-13", 0, 1, 1),
    ]
    assert_equals_full_build(settings, full_copy)

    # 2. Cy comes back in week 3, and Bo's card is erased: one customer fewer everywhere,
    # one cohort row more, the same sales (and Cy's new one).
    revenue = "select sum(revenue) from reporting.rpt_daily_branch_sales"
    before = rows(url, revenue)
    load_files(settings, [export(tmp_path, "York", "22-01-2025", [("12:00", CY)])])
    erasure = forget_card(PostgresStore(url), CardKeys(load_card_key(settings)), BO, reason="asked")
    assert erasure.counts.transactions == 3
    assert_dbt_ok(run_dbt_captured(settings, "build", *AS_SCHEDULED))
    assert rows(url, "select count(*) from marts.dim_customers") == [(2,)]
    assert rows(url, revenue) == [(before[0][0] + Decimal("2.15"),)]
    assert rows(
        url,
        "select cohort_week_local::text, weeks_since_first, cohort_size, active_customers"
        " from reporting.rpt_cohort_retention order by 1, 2",
    ) == [
        ("2025-01-06", 0, 1, 1),
        ("2025-01-06", 1, 1, 1),
        ("2025-01-06", 2, 1, 1),
        ("2025-01-13", 0, 1, 1),
    ]
    assert_equals_full_build(settings, full_copy)
