"""The PostgreSQL writer against the real embedded server: exactly once, replacements,
concurrency, crash safety (an attempt that dies stays visible), migrations and privacy."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader.hashing import CardKey
from loader.ledger import LoadResult, Status
from loader.schema import LEDGER_CHECKS, ensure_schema
from loader.service import load_path
from loader.writers.postgres import PostgresWarehouse

KEY = CardKey(b"integration-test-key-0123456789ab", "test-v1")
HEADER = "date,location,name,basket,total,payment_type,card_number"


def card_line(minute: int, card: str = "4111111111111111", branch: str = "Chesterfield") -> str:
    return (
        f"25/08/2021 09:{minute % 60:02d},{branch},Ann Lee,"
        f'"Large Latte - 2.45, Regular Mocha - 2.30",4.75,CARD,{card}'
    )


def write(path: Path, lines: list[str], end: str = "\r\n") -> Path:
    path.write_text(end.join([HEADER, *lines]) + end, encoding="utf-8", newline="")
    return path


def load(url: str, path: Path, key: str | None = None) -> LoadResult:
    return load_path(path, key or path.name, warehouse=PostgresWarehouse(url), key=KEY)


def scalar(url: str, query: str, *params: object) -> object:
    with psycopg.connect(url) as connection:
        row = connection.execute(query, params).fetchone()
        return row[0] if row else None


def data_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def test_real_exports_load_every_row(fresh_database_url: str, samples_dir: Path) -> None:
    for path in sorted(samples_dir.glob("*.csv")):
        result = load(fresh_database_url, path)
        expected = data_rows(path)
        assert result.status is Status.LOADED
        assert (result.counts.read, result.counts.loaded) == (expected, expected)
        assert (
            scalar(
                fresh_database_url,
                "select count(*) from raw.transactions where source_key = %s",
                path.name,
            )
            == expected
        )
        assert (
            scalar(
                fresh_database_url,
                "select min(line_number) from raw.transactions where source_key = %s",
                path.name,
            )
            == 2
        )
    ledger = scalar(
        fresh_database_url,
        "select count(*) from raw.loaded_files where is_current"
        " and rows_read = rows_loaded + rows_rejected"
        " and branch_name is not null and file_exported_at is not null",
    )
    assert ledger == 3


def test_same_file_five_times_loads_once(fresh_database_url: str, tmp_path: Path) -> None:
    path = write(
        tmp_path / "chesterfield_01-01-2024_09-00-00.csv", [card_line(m) for m in range(5)]
    )
    statuses = [load(fresh_database_url, path).status for _ in range(5)]
    assert statuses == [Status.LOADED] + [Status.DUPLICATE] * 4
    assert scalar(fresh_database_url, "select count(*) from raw.transactions") == 5
    assert (
        scalar(
            fresh_database_url, "select count(*) from raw.loaded_files where status = 'duplicate'"
        )
        == 4
    )
    assert scalar(fresh_database_url, "select count(*) from raw.loaded_files where is_current") == 1


def test_corrected_re_export_replaces_the_old_version(
    fresh_database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "chesterfield_01-01-2024_09-00-00.csv"
    write(
        path,
        [card_line(m) for m in range(5)]
        + ["31/02/2024 09:00,Chesterfield,X,Latte - 1.00,1.00,CASH,"],
    )
    assert load(fresh_database_url, path).status is Status.LOADED
    write(path, [card_line(m, branch="Chesterfield Central") for m in range(3)])
    result = load(fresh_database_url, path)
    assert result.status is Status.REPLACED and result.counts.loaded == 3
    assert scalar(fresh_database_url, "select count(*) from raw.transactions") == 3
    assert (
        scalar(fresh_database_url, "select count(distinct branch_name) from raw.transactions") == 1
    )
    assert scalar(fresh_database_url, "select count(*) from raw.rejected_rows") == 0
    assert scalar(fresh_database_url, "select count(*) from raw.loaded_files where is_current") == 1
    assert (
        scalar(fresh_database_url, "select status from raw.loaded_files where is_current")
        == "replaced"
    )


def test_concurrent_loads_come_out_exactly_once(fresh_database_url: str, tmp_path: Path) -> None:
    files = [
        write(
            tmp_path / f"branch{index}_01-01-2024_09-00-00.csv",
            [card_line(m, branch=f"Branch {index}") for m in range(40)],
        )
        for index in range(8)
    ]
    same = write(tmp_path / "shared_01-01-2024_09-00-00.csv", [card_line(m) for m in range(40)])
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(
            pool.map(lambda path: load(fresh_database_url, path), [*files, same, same, same, same])
        )
    assert all(result.status is not Status.FAILED for result in results), results
    assert sorted(r.status.value for r in results[8:]) == ["duplicate"] * 3 + ["loaded"]
    assert {r.duplicate_of for r in results[8:] if r.status is Status.DUPLICATE} == {same.name}
    assert scalar(fresh_database_url, "select count(*) from raw.transactions") == 9 * 40
    assert scalar(fresh_database_url, "select count(*) from raw.loaded_files where is_current") == 9
    # Every attempt's started row was closed with its outcome: none is left open.
    assert (
        scalar(fresh_database_url, "select count(*) from raw.loaded_files where status = 'started'")
        == 0
    )


def test_killed_loader_leaves_only_its_started_row_and_a_retry_succeeds(
    fresh_database_url: str, tmp_path: Path
) -> None:
    rows = 300_000
    path = tmp_path / "big_01-01-2024_09-00-00.csv"
    with path.open("w", newline="") as handle:
        handle.write(HEADER + "\r\n")
        line = card_line(0) + "\r\n"
        handle.writelines(line for _ in range(rows))
    ensure_schema(psycopg.connect(fresh_database_url, autocommit=True))
    env = {**os.environ, "CAFE_DATABASE_URL": fresh_database_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "cafe.cli", "load", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        copying = False
        while time.monotonic() < deadline and process.poll() is None:
            copying = bool(
                scalar(
                    fresh_database_url,
                    "select count(*) from pg_stat_activity where datname = current_database()"
                    " and query ilike 'copy raw.transactions%%' and state = 'active'",
                )
            )
            closed = scalar(
                fresh_database_url,
                "select count(*) from raw.loaded_files where status <> 'started'",
            )
            if copying and closed == 0:
                break
            time.sleep(0.02)
        assert copying, "never saw the COPY in progress"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10  # the server notices the lost client and rolls back
    while (
        scalar(
            fresh_database_url,
            "select count(*) from pg_stat_activity where query ilike 'copy raw.%%'",
        )
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert scalar(fresh_database_url, "select count(*) from raw.transactions") == 0
    assert scalar(fresh_database_url, "select count(*) from raw.rejected_rows") == 0
    with psycopg.connect(fresh_database_url) as connection:
        died = connection.execute(
            "select source_key, status, is_current, rows_read, finished_at, started_at"
            " from raw.loaded_files"
        ).fetchall()
    # The attempt that died is visible: its started row, never closed, and nothing else.
    assert [row[:5] for row in died] == [(path.name, "started", False, 0, None)]
    assert died[0][5] is not None
    result = load(fresh_database_url, path)
    assert result.status is Status.LOADED and result.counts.loaded == rows
    assert scalar(fresh_database_url, "select count(*) from raw.transactions") == rows
    assert (
        scalar(
            fresh_database_url,
            "select string_agg(status, ',' order by started_at) from raw.loaded_files",
        )
        == "started,loaded"
    )


def test_schema_is_created_and_migrated_idempotently(fresh_database_url: str) -> None:
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        connection.execute("create schema raw")
        connection.execute(
            "create table raw.transactions (source_key varchar(1024) not null,"
            " line_number integer not null, file_checksum char(64) not null,"
            " transaction_date varchar(32) not null, branch_name varchar(256) not null,"
            " customer_name varchar(256), basket varchar(65535) not null,"
            " total_amount numeric(12,2) not null, payment_type varchar(8) not null,"
            " card_hash char(64), loaded_at timestamptz not null default now(),"
            " primary key (source_key, line_number))"
        )
        ensure_schema(connection)
        ensure_schema(connection)
    assert (
        scalar(
            fresh_database_url,
            "select count(*) from information_schema.columns where table_schema = 'raw'"
            " and table_name = 'transactions' and column_name = 'card_key_version'",
        )
        == 1
    )


# The ledger as the first release created it, with a duplicate row it wrote.
_FIRST_RELEASE_LEDGER = """
    create table raw.loaded_files (
        load_id varchar(36) primary key, source_key varchar(1024) not null,
        file_checksum char(64) not null, file_size_bytes bigint, branch_name varchar(256),
        file_exported_at timestamp, status varchar(16) not null, is_current boolean not null,
        rows_read integer not null, rows_loaded integer not null, rows_rejected integer not null,
        started_at timestamptz, finished_at timestamptz, error_text varchar(4096),
        loader_version varchar(32),
        constraint loaded_files_status_check
            check (status in ('loaded', 'replaced', 'duplicate', 'failed', 'refused')),
        constraint loaded_files_rows_add_up check (rows_read = rows_loaded + rows_rejected)
    )
"""


def test_a_changed_constraint_is_noticed_and_migrated(fresh_database_url: str) -> None:
    checksum = "a" * 64
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        connection.execute("create schema raw")
        connection.execute(_FIRST_RELEASE_LEDGER)
        for load_id, status, current in (("1", "loaded", True), ("2", "duplicate", False)):
            connection.execute(
                "insert into raw.loaded_files values"
                " (%s, 'k.csv', %s, 1, null, null, %s, %s, 0, 0, 0, now(), now(), null, null)",
                (load_id, checksum, status, current),
            )
        ensure_schema(connection)
        names = {
            name
            for (name,) in connection.execute(
                "select conname from pg_constraint where contype = 'c'"
                " and conrelid = 'raw.loaded_files'::regclass"
            ).fetchall()
        }
        assert names == {check.name for check in LEDGER_CHECKS}
        # The old duplicate row names what it copies (itself: a re-delivery).
        assert connection.execute(
            "select duplicate_of from raw.loaded_files where load_id = '2'"
        ).fetchone() == ("k.csv",)
        # The new status is accepted, an unknown one and a broken row are not.
        connection.execute(
            "insert into raw.loaded_files (load_id, source_key, file_checksum, status,"
            " is_current, rows_read, rows_loaded, rows_rejected, started_at)"
            " values ('3', 'k.csv', %s, 'started', false, 0, 0, 0, now())",
            (checksum,),
        )
        broken_rows = [
            "('4', 'k.csv', %s, 'exploded', false, 0, 0, 0, now(), now(), null)",
            "('5', 'k.csv', %s, 'duplicate', false, 0, 0, 0, now(), now(), null)",
            "('6', 'k.csv', %s, 'refused', true, 0, 0, 0, now(), now(), null)",
            "('7', 'k.csv', %s, 'failed', false, 2, 1, 1, now(), now(), null)",
            "('8', 'k.csv', %s, 'failed', false, 0, 0, 0, now(), null, null)",
            "('9', 'k.csv', %s, 'loaded', false, 0, 0, 0, now(), now(), 'k.csv')",
        ]
        for values in broken_rows:
            with pytest.raises(psycopg.errors.CheckViolation):
                connection.execute(
                    "insert into raw.loaded_files (load_id, source_key, file_checksum, status,"
                    " is_current, rows_read, rows_loaded, rows_rejected, started_at,"
                    f" finished_at, duplicate_of) values {values}",
                    (checksum,),
                )


def test_no_clear_card_number_anywhere_in_the_database(
    fresh_database_url: str, tmp_path: Path
) -> None:
    cards = ["4929123456789012", "5494173772652516", "6011000990139424"]
    lines = [card_line(i, card) for i, card in enumerate(cards)]
    lines += [
        f"31/02/2024 09:00,Chesterfield,Ann Lee,Large Latte - 2.45,2.45,CARD,{cards[0]}",
        f"25/08/2021 09:00,Chesterfield,Ann Lee,Large Latte - 2.45,2.45,CASH,{cards[1]}",
        f"25/08/2021 09:00,Chesterfield,{cards[2]},Large Latte - 2.45,2.45,CARD,{cards[2]}",
        f"short,line,{cards[0]}",
        "25/08/2021 09:00,Chesterfield,Ann Lee,Large Latte - 2.45,2.45,CARD,6011-0009-9013-9424",
    ]
    result = load(fresh_database_url, write(tmp_path / "privacy_01-01-2024_09-00-00.csv", lines))
    assert result.counts.rejected == 4
    spaced = ["6011 0009 9013 9424", "6011-0009-9013-9424"]
    with psycopg.connect(fresh_database_url) as connection:
        columns = connection.execute(
            "select table_schema, table_name, column_name from information_schema.columns"
            " where data_type in ('character varying', 'character', 'text')"
            " and table_schema not in ('pg_catalog', 'information_schema')"
        ).fetchall()
        assert len(columns) > 10
        for schema, table, column in columns:
            found = connection.execute(
                psycopg.sql.SQL("select count(*) from {}.{} where {} like any(%s)").format(
                    psycopg.sql.Identifier(schema),
                    psycopg.sql.Identifier(table),
                    psycopg.sql.Identifier(column),
                ),
                ([f"%{card}%" for card in cards + spaced],),
            ).fetchone()
            assert found == (0,), (schema, table, column)
        masked = connection.execute(
            "select raw_line from raw.rejected_rows order by line_number"
        ).fetchall()
    assert any("************9012" in line for (line,) in masked)


_lines = st.lists(
    st.one_of(
        st.sampled_from(
            [
                card_line(1),
                card_line(2, "4111 1111 1111 1111"),
                "a,b",
                "",
                '"',
                "31/02/2024 09:00,B,N,L - 1,1,CASH,",
            ]
        ),
        st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20),
    ),
    max_size=15,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=_lines, end=st.sampled_from(["\r\n", "\n", "\r"]))
def test_arbitrary_text_through_postgres_keeps_counts(
    fresh_database_url: str, tmp_path: Path, lines: list[str], end: str
) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(end.join(lines).encode())
    key = f"fuzz-{uuid.uuid4().hex}.csv"
    result = load(fresh_database_url, path, key)
    # The same bytes as an earlier example's file are a copy of it: recorded, not loaded.
    assert result.status in (Status.LOADED, Status.REFUSED, Status.DUPLICATE), result
    loaded = scalar(
        fresh_database_url, "select count(*) from raw.transactions where source_key = %s", key
    )
    rejected = scalar(
        fresh_database_url, "select count(*) from raw.rejected_rows where source_key = %s", key
    )
    assert (loaded, rejected) == (result.counts.loaded, result.counts.rejected)
    assert result.counts.read == result.counts.loaded + result.counts.rejected


@pytest.mark.parametrize("workers", [4])
def test_advisory_lock_ids_differ_per_key(workers: int) -> None:
    from loader.writers.postgres import lock_id

    ids = {lock_id(f"landing/file{index}.csv") for index in range(workers * 100)}
    assert len(ids) == workers * 100
    assert all(-(2**63) <= value < 2**63 for value in ids)
