"""The build never stops on data: odd rows already in raw build, warn and are counted.

Rows loaded before the line contract (or by a faulty loader) stay in `raw`: a basket of 30
items, items without a size, without a price or with text after it, an unknown size or
drink, an empty basket, a till time that does not exist, dates in 1950 and 2099 (more than
10,000 days apart), a payment type outside the contract, and an old rejection reason that
quotes a customer's name. They are written straight into raw, as such a loader would
have, next to real exports; then `dbt build` runs on a warehouse whose reporting role does
not exist. It must exit 0 with every integrity test passing, refresh the reporting marts,
flag and count what is odd through warning tests with stored failures (recorded in
`rpt_build_results`), and never quote a value of those rows into dbt's log or the server
log. The same warehouse shows the freshness view aging with the reader's clock.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from dbt_helpers import load_files, private_database, run_dbt_captured

from cafe.dbt_project import dbt_log_dir
from loader.settings import Settings

pytestmark = pytest.mark.slow  # dbt build on a database of its own

MARKER = "ZQXMARKERZQX"
LEGACY_KEY = "legacy_02-01-2020_09-00-00.csv"
LEGACY_BRANCH = "Legacy"
LEGACY_NAME = "Zebedee Quartermaine"
NO_REPORTING_ROLE = "--vars={reporting_role: cafe_nobody}"
THIRTY_ITEMS = ", ".join(["Large Latte - 2.45"] * 29 + ["Regular Tea - 1.50"])
# (line, till time, basket, payment type, items the basket should give, unreadable items)
LEGACY_LINES = (
    (2, "02/01/2020 09:00", THIRTY_ITEMS, "CARD", 30, 0),
    (3, "02/01/2020 09:05", "Latte - 2.45, Large Mocha - 2.80", "CASH", 1, 1),
    (4, "02/01/2020 09:10", f"Large Latte - 2.45 {MARKER}, Large Latte", "CASH", 0, 2),
    (5, "02/01/2020 09:15", "Huge Latte - 3.00, Regular Unicorn frappe - 4.00", "CASH", 2, 0),
    (6, "31/02/2020 09:20", "Large Latte - 2.45", "CASH", 1, 0),
    (7, "01/01/1950 12:00", "Large Latte - 99999999", "CASH", 0, 1),
    (8, "01/01/2099 12:00", "Large Latte - 2.45", "BITCOIN", 1, 0),
    (9, "02/01/2020 09:30", "", "CASH", 0, 1),
)
ODD_VALUE_TESTS = (
    "not_null_stg_till__transactions_transacted_at_local",
    "accepted_values_stg_till__transactions_payment_method__Card__Cash",
    "relationships_dim_products_size__size__ref_product_sizes_",
    "relationships_dim_products_base_product_name__product_name__ref_product_categories_",
    "accepted_values_fct_transactions_unreadable_item_count__False__0",
    "not_null_fct_transactions_transacted_at_utc",
)


@dataclass(frozen=True)
class OddWarehouse:
    settings: Settings
    database_url: str
    build_output: str
    build_exit_code: int
    log_scanned_from: int


def _write_legacy_rows(database_url: str) -> None:
    checksum = hashlib.sha256(LEGACY_KEY.encode()).hexdigest()
    with psycopg.connect(database_url) as connection:
        for line, when, basket, payment, _, _ in LEGACY_LINES:
            connection.execute(
                "insert into raw.transactions (source_key, line_number, file_checksum,"
                " transaction_date, branch_name, customer_name, basket, total_amount,"
                " payment_type, card_hash, card_key_version)"
                " values (%s, %s, %s, %s, %s, %s, %s, 9.99, %s, %s, %s)",
                (
                    LEGACY_KEY,
                    line,
                    checksum,
                    when,
                    LEGACY_BRANCH,
                    LEGACY_NAME,
                    basket,
                    payment,
                    "ab" * 32 if payment == "CARD" else None,
                    "local-v1" if payment == "CARD" else None,
                ),
            )
        connection.execute(
            "insert into raw.rejected_rows (source_key, file_checksum, line_number, reason,"
            " raw_line) values (%s, %s, 10, %s, %s)",
            (LEGACY_KEY, checksum, f'date "{LEGACY_NAME}" is not in dd/mm/YYYY HH:MM form', None),
        )
        connection.execute(
            "insert into raw.loaded_files (load_id, source_key, file_checksum, file_size_bytes,"
            " branch_name, file_exported_at, status, is_current, rows_read, rows_loaded,"
            " rows_rejected, started_at, finished_at, error_text, loader_version)"
            " values (%s, %s, %s, 1000, %s, '2020-01-02 09:00', 'loaded', true, %s, %s, 1,"
            " now(), now(), null, 'legacy')",
            (
                str(uuid.uuid4()),
                LEGACY_KEY,
                checksum,
                LEGACY_BRANCH,
                len(LEGACY_LINES) + 1,
                len(LEGACY_LINES),
            ),
        )


def _log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


@pytest.fixture(scope="module")
def odd_warehouse(stack: Settings, stack_root: Path, samples_dir: Path) -> Iterator[OddWarehouse]:
    with private_database(stack, "odd") as settings:
        assert settings.database_url
        load_files(settings, sorted(samples_dir.glob("*.csv")))  # creates raw, as a loader does
        _write_legacy_rows(settings.database_url)
        logs = (dbt_log_dir() / "dbt.log", stack_root / "pg" / "server.log")
        scanned_from = min(_log_size(path) for path in logs)
        result = run_dbt_captured(settings, "build", NO_REPORTING_ROLE)
        yield OddWarehouse(
            settings, settings.database_url, result.stdout, result.returncode, scanned_from
        )


def test_the_build_exits_0_and_refreshes_the_reporting_marts(odd_warehouse: OddWarehouse) -> None:
    assert odd_warehouse.build_exit_code == 0, odd_warehouse.build_output[-6000:]
    with psycopg.connect(odd_warehouse.database_url, autocommit=True) as connection:
        branches = {
            row[0]
            for row in connection.execute(
                "select distinct branch_name from reporting.rpt_daily_branch_sales"
            )
        }
        legacy_products = connection.execute(
            "select product_name, is_known_product from reporting.rpt_product_sales_daily"
            " where branch_name = %s order by 1",
            (LEGACY_BRANCH,),
        ).fetchall()
    assert LEGACY_BRANCH in branches and len(branches) > 1
    assert ("Huge Latte", False) in legacy_products
    assert ("Regular Unicorn frappe", False) in legacy_products
    assert ("Large Latte", True) in legacy_products


def test_every_line_is_one_transaction_with_its_readable_items(
    odd_warehouse: OddWarehouse,
) -> None:
    with psycopg.connect(odd_warehouse.database_url, autocommit=True) as connection:
        found = {
            row[0]: (row[1], row[2], row[3])
            for row in connection.execute(
                "select line_number, item_count, unreadable_item_count, payment_method"
                " from marts.fct_transactions where source_key = %s",
                (LEGACY_KEY,),
            )
        }
    expected = {
        line: (items, unreadable, {"CARD": "Card", "CASH": "Cash"}.get(payment, "Unknown"))
        for line, _, _, payment, items, unreadable in LEGACY_LINES
    }
    assert found == expected


def test_dim_dates_spans_the_whole_range_of_the_data(odd_warehouse: OddWarehouse) -> None:
    with psycopg.connect(odd_warehouse.database_url, autocommit=True) as connection:
        row = connection.execute(
            "select min(date_day), max(date_day), count(*), count(distinct date_day)"
            " from marts.dim_dates"
        ).fetchone()
    assert row is not None
    first, last, days, distinct = row
    assert (str(first), str(last)) == ("1950-01-01", "2099-01-01")
    assert days == distinct == (last - first).days + 1 > 10_000


def test_odd_values_are_warnings_counted_with_stored_failures(
    odd_warehouse: OddWarehouse,
) -> None:
    with psycopg.connect(odd_warehouse.database_url, autocommit=True) as connection:
        results = connection.execute(
            "select node_name, check_kind, status, failures, failures_relation"
            " from reporting.rpt_build_results where invocation_id ="
            " (select invocation_id from reporting.rpt_build_results"
            "  where command = 'build' order by recorded_at_utc desc limit 1)"
        ).fetchall()
        by_test = {row[0]: row[1:] for row in results}
        for name in ODD_VALUE_TESTS:
            kind, status, failures, relation = by_test[name]
            assert (kind, status) == ("data_value", "warn"), name
            assert failures and failures > 0, name
            stored = connection.execute(f"select count(*) from {relation}").fetchone()
            assert stored and stored[0] > 0, f"{name}: no failing rows stored in {relation}"
    integrity = {status for _, kind, status, _, _ in results if kind == "integrity"}
    assert integrity == {"pass"}
    assert {status for _, kind, status, _, _ in results if kind == "build"} <= {"success", "no-op"}


def test_an_old_reason_quoting_a_value_leaves_raw_by_its_field_only(
    odd_warehouse: OddWarehouse,
) -> None:
    with psycopg.connect(odd_warehouse.database_url, autocommit=True) as connection:
        staged = connection.execute(
            "select reason_field, reason from staging.stg_till__rejected_rows"
            " where source_key = %s",
            (LEGACY_KEY,),
        ).fetchall()
        reported = connection.execute(
            "select reason_category, rejected_rows from reporting.rpt_rejection_reasons_daily"
            " where branch_name = %s",
            (LEGACY_BRANCH,),
        ).fetchall()
    assert staged == [("date", None)]
    assert reported == [("date", 1)]


def test_no_value_of_an_odd_row_reaches_a_log(
    odd_warehouse: OddWarehouse, stack_root: Path
) -> None:
    for log in (dbt_log_dir() / "dbt.log", stack_root / "pg" / "server.log"):
        with log.open("rb") as handle:
            handle.seek(odd_warehouse.log_scanned_from if log.name == "dbt.log" else 0)
            text = handle.read().decode("utf-8", errors="replace")
        assert MARKER not in text and LEGACY_NAME not in text, f"{log} quotes an odd row"


def test_a_grant_demanded_for_a_missing_role_fails_loudly(odd_warehouse: OddWarehouse) -> None:
    demanded = run_dbt_captured(
        odd_warehouse.settings,
        "run",
        "--select",
        "rpt_daily_branch_sales",
        "--vars={reporting_role: cafe_nobody, grant_reporting_role: always}",
    )
    assert demanded.returncode != 0
    assert 'role "cafe_nobody" does not exist' in demanded.stdout


def _export_name(branch: str, exported_at_utc: datetime) -> str:
    local = exported_at_utc.astimezone(ZoneInfo("Europe/London"))
    return f"{branch}_{local:%d-%m-%Y_%H-%M-%S}.csv"


def test_branch_freshness_ages_with_the_readers_clock(
    odd_warehouse: OddWarehouse, tmp_path: Path
) -> None:
    """No build between two reads: the branch turns silent 26 hours after its export."""
    exported = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=26, seconds=-6)
    export = tmp_path / _export_name("filey", exported)
    till_time = (exported - timedelta(hours=1)).astimezone(ZoneInfo("Europe/London"))
    export.write_text(
        "date,location,name,basket,total,payment_type,card_number\r\n"
        f"{till_time:%d/%m/%Y %H:%M},Filey,,Large Latte - 2.45,2.45,CASH,\r\n"
    )
    load_files(odd_warehouse.settings, [export])

    def read() -> tuple[float, bool]:
        with psycopg.connect(odd_warehouse.database_url, autocommit=True) as connection:
            row = connection.execute(
                "select hours_since_last_file, is_silent from reporting.rpt_branch_freshness"
                " where branch_name = 'Filey'"
            ).fetchone()
        assert row is not None, "the view reads the ledger live: the new branch is there"
        return float(row[0]), bool(row[1])

    hours_before, silent_before = read()
    silent_from = exported + timedelta(hours=26, seconds=1)
    time.sleep(max(0.0, (silent_from - datetime.now(UTC)).total_seconds()))
    hours_after, silent_after = read()
    assert not silent_before and silent_after
    assert 25.99 <= hours_before <= hours_after
