"""The built warehouse: reconciliation, privacy and the reporting role's reach."""

from __future__ import annotations

import psycopg
import pytest
from dbt_helpers import DbtWarehouse, run_dbt_captured, with_database

from loader.settings import REPORTING_ROLE

MART_SCHEMAS = ("staging", "intermediate", "marts", "reporting")
REPORTING_RELATIONS = (
    "rpt_daily_branch_sales",
    "rpt_hourly_footfall",
    "rpt_product_sales_daily",
    "rpt_payment_mix_daily",
    "rpt_customers_weekly",
    "rpt_cohort_retention",
    "rpt_file_loads",
    "rpt_rejection_reasons_daily",
    "rpt_branch_freshness",
    "rpt_build_results",
)


def test_every_accepted_line_is_one_transaction(warehouse_connection: psycopg.Connection) -> None:
    row = warehouse_connection.execute(
        "select (select count(*) from marts.fct_transactions),"
        " (select sum(rows_loaded) from raw.loaded_files where is_current),"
        " (select count(*) from raw.transactions)"
    ).fetchone()
    assert row is not None
    facts, ledger, raw = row
    assert facts == ledger == raw > 0


def test_item_lines_add_up_to_the_till_totals(warehouse_connection: psycopg.Connection) -> None:
    row = warehouse_connection.execute(
        "select count(*) filter (where is_total_mismatch), sum(item_count),"
        " (select sum(quantity) from marts.fct_transaction_items)"
        " from marts.fct_transactions"
    ).fetchone()
    assert row is not None
    mismatches, items_in_baskets, items_in_lines = row
    assert mismatches == 0
    assert items_in_baskets == items_in_lines


def test_summer_time_shifts_utc_by_one_hour(warehouse_connection: psycopg.Connection) -> None:
    offsets: dict[bool, list[object]] = dict(
        warehouse_connection.execute(
            "select sales_date_local < date '2024-03-31',"
            " array_agg(distinct transacted_at_local - (transacted_at_utc at time zone 'UTC'))"
            " from marts.fct_transactions"
            " where sales_date_local between '2024-03-29' and '2024-04-02'"
            " group by 1"
        ).fetchall()
    )
    assert [str(offset) for offset in offsets[True]] == ["0:00:00"]
    assert [str(offset) for offset in offsets[False]] == ["1:00:00"]


def test_reporting_marts_hold_every_branch(warehouse_connection: psycopg.Connection) -> None:
    raw_branches = {
        row[0]
        for row in warehouse_connection.execute("select distinct branch_name from raw.transactions")
    }
    for relation in ("rpt_daily_branch_sales", "rpt_hourly_footfall", "rpt_product_sales_daily"):
        found = {
            row[0]
            for row in warehouse_connection.execute(
                f"select distinct branch_name from reporting.{relation}"
            )
        }
        assert found == raw_branches, relation


def test_no_column_outside_raw_can_hold_a_name(warehouse_connection: psycopg.Connection) -> None:
    leaked = warehouse_connection.execute(
        "select table_schema, table_name, column_name from information_schema.columns"
        " where table_schema = any(%s)"
        " and (column_name like '%%name%%' and column_name not in"
        " ('branch_name', 'first_branch_name', 'product_name', 'base_product_name',"
        " 'weekday_name', 'node_name', 'target_name'))",
        (list(MART_SCHEMAS),),
    ).fetchall()
    assert leaked == []


@pytest.fixture
def reporting_connection(dbt_warehouse: DbtWarehouse) -> psycopg.Connection:
    password = dbt_warehouse.settings.reporting_password
    assert password, "the stack provisions the reporting role's password"
    admin = psycopg.conninfo.conninfo_to_dict(dbt_warehouse.database_url)
    url = with_database(
        f"postgresql://{REPORTING_ROLE}:{password}@{admin['host']}:{admin['port']}/x",
        dbt_warehouse.database_url.rsplit("/", 1)[1],
    )
    return psycopg.connect(url, autocommit=True)


def test_reporting_role_reads_reporting_marts_only(
    reporting_connection: psycopg.Connection,
) -> None:
    with reporting_connection:
        for relation in REPORTING_RELATIONS:
            reporting_connection.execute(f"select * from reporting.{relation} limit 1").fetchall()
        for forbidden in (
            "raw.transactions",
            "staging.stg_till__transactions",
            "marts.fct_transactions",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reporting_connection.execute(f"select 1 from {forbidden} limit 1")


def test_privacy_test_catches_a_leaked_customer_name(
    dbt_warehouse: DbtWarehouse, warehouse_connection: psycopg.Connection
) -> None:
    row = warehouse_connection.execute(
        "select customer_name from raw.transactions where customer_name is not null limit 1"
    ).fetchone()
    assert row is not None
    warehouse_connection.execute("create table reporting.leak_probe (note varchar(256))")
    try:
        warehouse_connection.execute("insert into reporting.leak_probe values (%s)", row)
        result = run_dbt_captured(
            dbt_warehouse.settings, "test", "--select", "assert_no_customer_names_outside_raw"
        )
    finally:
        warehouse_connection.execute("drop table reporting.leak_probe")
    assert result.returncode != 0
    assert "FAIL 1 assert_no_customer_names_outside_raw" in result.stdout
