"""The Redshift writer against a stand-in Data API that runs its SQL on the real PostgreSQL.

Redshift cannot run here. The stand-in (`PostgresDataApi`) answers like the Data API
(ids, describe, results, cancel) and executes what the writer sends on a fresh PostgreSQL
database that holds the loader's tables: each `batch_execute_statement` in one
transaction, each `execute_statement` on its own. A `COPY ... FORMAT AS PARQUET` is
performed by reading the staged Parquet from the (moto) bucket and inserting its rows by
position, as Redshift does, after checking what the COPY documentation requires (as many
file columns as table columns, a compression it lists). So the writer's SQL, its
decisions under the lock and its ledger rows are tested for what they do, and the
PostgreSQL ledger's check constraints (which Redshift would not enforce) hold the writer to
the ledger's rules. Every statement shape is also parsed with sqlfluff's Redshift dialect.
"""

from __future__ import annotations

import io
import os
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
import sqlfluff

from loader.aws import aws_client
from loader.batches import Deadline
from loader.errors import CardKeyMismatch
from loader.hashing import CardKey
from loader.ledger import Status
from loader.schema import (
    RAW_TABLE_COLUMNS,
    REDSHIFT_DDL,
    REDSHIFT_MIGRATIONS,
    TRANSACTION_COLUMNS,
    ensure_schema,
)
from loader.service import load_file, load_path
from loader.settings import Settings
from loader.writers.redshift import (
    CHANGED_WHILE_DECIDING,
    RedshiftTarget,
    RedshiftWarehouse,
    sql_literal,
)

# A uuid's hex may hold 12+ digits in a row, which the key rule refuses as card-like.
_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")
KEY = CardKey(b"redshift-test-key-0123456789abcdef", "rs-v1")
HEADER = "date,location,name,basket,total,payment_type,card_number"
CARD = "4111111111111111"
ROLE = "arn:aws:iam::123456789012:role/cafe-redshift-copy"
LEDGER_LOCK = 'lock "raw".loaded_files'
_COPY = re.compile(
    r"^copy (?P<table>\w+) from '(?P<location>s3://[^']+)' iam_role '[^']+' format as parquet$"
)
# Redshift's getdate(): the session's (UTC) wall clock as a plain timestamp.
_GETDATE = (
    "create or replace function getdate() returns timestamp language sql"
    " as $$ select clock_timestamp() at time zone 'UTC' $$"
)


@dataclass
class Statement:
    status: str
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    error: str = ""


@dataclass
class PostgresDataApi:
    """The Redshift Data API, answered by a PostgreSQL database (see the module docstring)."""

    database_url: str
    s3: Any
    bucket: str
    stuck_loads: bool = False  # load batches never finish (until cancelled)
    failing_loads: str | None = None  # load batches fail with this error
    barrier: threading.Barrier | None = None  # load batches wait for each other here
    before_load_batch: Callable[[], None] | None = None  # runs once, before a load batch
    sql: list[str] = field(default_factory=list)
    batches: list[list[str]] = field(default_factory=list)
    staged: dict[str, bytes] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    _statements: dict[str, Statement] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def execute_statement(self, *, Sql: str, **_: Any) -> dict[str, str]:
        with self._lock:
            self.sql.append(Sql)
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            return self._started(lambda: self._run(connection, Sql))

    def batch_execute_statement(self, *, Sqls: list[str], **_: Any) -> dict[str, str]:
        with self._lock:
            self.sql.extend(Sqls)
            self.batches.append(list(Sqls))
        is_load = Sqls[0] == LEDGER_LOCK
        if is_load and self.before_load_batch is not None:
            hook, self.before_load_batch = self.before_load_batch, None
            hook()
        if is_load and self.barrier is not None:
            self.barrier.wait(timeout=60)
        if is_load and self.stuck_loads:
            return self._register(Statement("STARTED"))
        if is_load and self.failing_loads:
            return self._register(Statement("FAILED", error=self.failing_loads))

        def run_all() -> list[tuple[Any, ...]]:
            with psycopg.connect(self.database_url) as connection, connection.transaction():
                for sql in Sqls:
                    self._run(connection, sql)
            return []

        return self._started(run_all)

    def describe_statement(self, Id: str) -> dict[str, str]:
        statement = self._statements[Id]
        return {"Id": Id, "Status": statement.status, "Error": statement.error}

    def get_statement_result(self, Id: str) -> dict[str, Any]:
        rows = self._statements[Id].rows
        return {"Records": [[_field(value) for value in row] for row in rows]}

    def cancel_statement(self, Id: str) -> dict[str, bool]:
        self.cancelled.append(Id)
        self._statements[Id].status = "ABORTED"
        return {"Status": True}

    def _started(self, work: Callable[[], list[tuple[Any, ...]]]) -> dict[str, str]:
        try:
            return self._register(Statement("FINISHED", work()))
        except psycopg.Error as error:
            return self._register(Statement("FAILED", error=f"ERROR: {error}"))

    def _register(self, statement: Statement) -> dict[str, str]:
        statement_id = str(uuid.uuid4())
        with self._lock:
            self._statements[statement_id] = statement
        return {"Id": statement_id}

    def _run(self, connection: psycopg.Connection[Any], sql: str) -> list[tuple[Any, ...]]:
        copy = _COPY.match(sql)
        if copy:
            self._copy(connection, copy["table"], copy["location"])
            return []
        cursor = connection.execute(sql)
        return cursor.fetchall() if cursor.description else []

    def _copy(self, connection: psycopg.Connection[Any], table: str, location: str) -> None:
        """COPY ... FORMAT AS PARQUET: every file under the prefix, columns by position."""
        prefix = location.removeprefix(f"s3://{self.bucket}/")
        width = len(connection.execute(f"select * from {table} limit 0").description or ())
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        for entry in listing.get("Contents", []):
            body = self.s3.get_object(Bucket=self.bucket, Key=entry["Key"])["Body"].read()
            with self._lock:
                self.staged[entry["Key"]] = body
            parquet = pq.ParquetFile(io.BytesIO(body))
            columns = parquet.metadata.row_group(0)
            assert parquet.metadata.num_columns == width, "COPY needs the table's column count"
            assert all(columns.column(index).compression == "SNAPPY" for index in range(width)), (
                "a compression the COPY documentation lists"
            )
            rows = [tuple(row.values()) for row in parquet.read().to_pylist()]
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"insert into {table} values ({', '.join(['%s'] * width)})", rows
                )


def _field(value: Any) -> dict[str, Any]:
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, datetime):
        return {"stringValue": value.isoformat(sep=" ")}
    return {"stringValue": str(value)}


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.01)


@pytest.fixture
def redshift_db(fresh_database_url: str) -> str:
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        ensure_schema(connection)
        connection.execute(_GETDATE)
    return fresh_database_url


@pytest.fixture
def data_api(stack: Settings, redshift_db: str) -> PostgresDataApi:
    return PostgresDataApi(redshift_db, aws_client(stack, "s3"), stack.landing_bucket)


def warehouse_for(data_api: PostgresDataApi, **options: Any) -> RedshiftWarehouse:
    target = RedshiftTarget("cafe", "dev", ROLE, data_api.bucket)
    options.setdefault("poll_seconds", 0)
    return RedshiftWarehouse(target, data_api=data_api, s3=data_api.s3, **options)  # type: ignore[arg-type]


@pytest.fixture
def warehouse(data_api: PostgresDataApi) -> RedshiftWarehouse:
    return warehouse_for(data_api)


def export(path: Path, branch: str = "Chesterfield", mtime: int | None = None) -> Path:
    path.write_text(
        "\r\n".join(
            [
                HEADER,
                f"25/08/2021 09:00,{branch},Ann O'Neil,"
                f'"Large Latte - 2.45, Regular Mocha - 2.30",4.75,CARD,{CARD}',
                f"25/08/2021 09:05,{branch},Bo,Regular Latte - 2.15,2.15,CASH,",
                f"31/02/2021 09:10,{branch},Cy,Regular Latte - 2.15,2.15,CARD,{CARD}",
            ]
        )
        + "\r\n",
        newline="",
    )
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def query(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(sql, params).fetchall()


def staged_objects(data_api: PostgresDataApi, load_id: str) -> int:
    listing = data_api.s3.list_objects_v2(Bucket=data_api.bucket, Prefix=f"staged/{load_id}/")
    return int(listing.get("KeyCount", 0))


def test_a_load_stages_snappy_parquet_and_loads_in_one_locked_transaction(
    warehouse: RedshiftWarehouse, data_api: PostgresDataApi, redshift_db: str, tmp_path: Path
) -> None:
    key = f"landing/{uuid.uuid4().hex.translate(_NO_DIGITS)}/chesterfield_25-08-2021_09-00-00.csv"
    result = load_path(export(tmp_path / "c.csv"), key, warehouse=warehouse, key=KEY)
    assert result.status is Status.LOADED, result.error_text
    assert (result.counts.read, result.counts.loaded, result.counts.rejected) == (3, 2, 1)

    [load_batch] = [batch for batch in data_api.batches if batch[0] == LEDGER_LOCK]
    assert load_batch[1].startswith("create temp table load_decision as")
    assert load_batch[-1].startswith('update "raw".loaded_files set status = decided_status')
    assert query(
        redshift_db,
        "select line_number, branch_name, customer_name, total_amount, card_key_version,"
        " loaded_at is not null, card_hash <> %s from raw.transactions order by 1",
        CARD,
    ) == [
        (2, "Chesterfield", "Ann O'Neil", Decimal("4.75"), "rs-v1", True, True),
        (3, "Chesterfield", "Bo", Decimal("2.15"), None, True, None),
    ]
    [(line, reason, rejected_at)] = query(
        redshift_db, "select line_number, reason, rejected_at from raw.rejected_rows"
    )
    assert line == 4 and reason.startswith("date:") and rejected_at is not None
    assert query(
        redshift_db,
        "select status, is_current, rows_read, rows_loaded, rows_rejected, finished_at"
        " >= started_at, file_encoding, file_header, source_modified_at is not null"
        " from raw.loaded_files",
    ) == [("loaded", True, 3, 2, 1, True, "utf-8", HEADER, True)]

    transactions = [body for name, body in data_api.staged.items() if "/transactions/" in name]
    assert transactions
    for body in transactions:
        table = pq.read_table(io.BytesIO(body))
        assert table.column_names == list(TRANSACTION_COLUMNS)  # no timestamp crosses Parquet
    for body in data_api.staged.values():
        assert CARD.encode() not in body
    assert staged_objects(data_api, result.load_id) == 0


def test_a_redelivery_is_a_duplicate_and_stages_nothing(
    warehouse: RedshiftWarehouse, data_api: PostgresDataApi, redshift_db: str, tmp_path: Path
) -> None:
    path = export(tmp_path / "c.csv")
    assert load_path(path, "landing/c.csv", warehouse=warehouse, key=KEY).status is Status.LOADED
    staged_before = len(data_api.staged)
    again = load_path(path, "landing/c.csv", warehouse=warehouse, key=KEY)
    assert (again.status, again.duplicate_of, again.counts) == (
        Status.DUPLICATE,
        "landing/c.csv",
        again.counts.__class__(),
    )
    assert len(data_api.staged) == staged_before
    assert query(redshift_db, "select count(*) from raw.transactions") == [(2,)]
    assert query(
        redshift_db, "select status, duplicate_of from raw.loaded_files order by started_at"
    ) == [("loaded", None), ("duplicate", "landing/c.csv")]


def test_copies_stale_versions_and_replacements(
    warehouse: RedshiftWarehouse, redshift_db: str, tmp_path: Path
) -> None:
    now = int(datetime.now(UTC).timestamp())
    original = export(tmp_path / "v1.csv", "Leeds", mtime=now - 60)
    correction = export(tmp_path / "v2.csv", "Leeds Central", mtime=now)

    def load(path: Path, key: str) -> Any:
        return load_path(path, key, warehouse=warehouse, key=KEY)

    assert load(original, "landing/leeds.csv").status is Status.LOADED
    copy = load(original, "landing/leeds again.csv")
    assert (copy.status, copy.duplicate_of) == (Status.DUPLICATE, "landing/leeds.csv")
    assert load(correction, "landing/leeds.csv").status is Status.REPLACED
    late = load(original, "landing/leeds.csv")
    assert (late.status, late.counts.loaded) == (Status.STALE, 0)
    assert query(redshift_db, "select distinct branch_name from raw.transactions") == [
        ("Leeds Central",)
    ]
    assert query(
        redshift_db,
        "select source_key, status, is_current from raw.loaded_files order by started_at",
    ) == [
        ("landing/leeds.csv", "loaded", False),
        ("landing/leeds again.csv", "duplicate", False),
        ("landing/leeds.csv", "replaced", True),
        ("landing/leeds.csv", "stale", False),
    ]


def test_two_loads_of_one_key_at_once_load_it_once(
    data_api: PostgresDataApi, redshift_db: str, tmp_path: Path
) -> None:
    # Both pass the pre-check (nothing current yet) and stage; the lock then serialises
    # their batches and the second decides from what the first committed.
    path = export(tmp_path / "c.csv")
    data_api.barrier = threading.Barrier(2)
    warehouses = [warehouse_for(data_api), warehouse_for(data_api)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(lambda w: load_path(path, "landing/c.csv", warehouse=w, key=KEY), warehouses)
        )
    assert sorted(result.status.value for result in results) == ["duplicate", "loaded"], results
    assert (
        len(data_api.staged) >= 2
    )  # both staged: the decision was the batch's, not the pre-check's
    assert query(redshift_db, "select count(*) from raw.transactions") == [(2,)]
    assert query(redshift_db, "select count(*) from raw.loaded_files where is_current") == [(1,)]


def test_a_ledger_change_after_the_pre_check_fails_the_attempt_for_a_retry(
    warehouse: RedshiftWarehouse, data_api: PostgresDataApi, redshift_db: str, tmp_path: Path
) -> None:
    first = export(tmp_path / "v1.csv", "Ripon")
    second = export(tmp_path / "v2.csv", "Ripon North")
    assert load_path(first, "landing/r.csv", warehouse=warehouse, key=KEY).status is (Status.LOADED)
    # A redelivery of v1 passes the pre-check as a duplicate (nothing staged); before its
    # batch runs, another worker replaces the key with v2 (a source that gives no time, so
    # neither is older). Under the lock v1 is then a replacement with nothing staged to
    # load: the attempt fails, and its retry decides anew.
    other = warehouse_for(data_api)

    def replace_meanwhile() -> None:
        with second.open("rb") as stream:
            replaced.append(load_file(stream, "landing/r.csv", warehouse=other, key=KEY).status)

    replaced: list[Status] = []
    data_api.before_load_batch = replace_meanwhile
    redelivered = load_path(first, "landing/r.csv", warehouse=warehouse, key=KEY)
    assert replaced == [Status.REPLACED]
    assert (redelivered.status, redelivered.error_text) == (Status.FAILED, CHANGED_WHILE_DECIDING)
    assert query(redshift_db, "select distinct branch_name from raw.transactions") == [
        ("Ripon North",)
    ]
    # The retry sees v2 current and v1 newer by its file time: v1 replaces it again.
    assert load_path(first, "landing/r.csv", warehouse=warehouse, key=KEY).status is (
        Status.REPLACED
    )


def test_the_deadline_cancels_a_statement_that_would_outlive_it(
    data_api: PostgresDataApi, redshift_db: str, tmp_path: Path
) -> None:
    clock = FakeClock()
    deadline = Deadline.after(40, reserve_seconds=10, clock=clock)
    warehouse = warehouse_for(data_api, sleep=clock.sleep, poll_seconds=1, deadline=deadline)
    data_api.stuck_loads = True
    result = load_path(export(tmp_path / "c.csv"), "landing/c.csv", warehouse=warehouse, key=KEY)
    assert result.status is Status.FAILED
    assert result.error_text is not None and result.error_text.endswith(": cancelled")
    [load_batch_id] = data_api.cancelled
    assert data_api.describe_statement(load_batch_id)["Status"] == "ABORTED"
    assert clock.now <= 1000 + 40  # gave up before the invocation's end, with time to record
    assert query(redshift_db, "select status, error_text from raw.loaded_files") == [
        ("failed", result.error_text)
    ]
    assert query(redshift_db, "select count(*) from raw.transactions") == [(0,)]
    assert staged_objects(data_api, result.load_id) == 0


def test_a_failed_batch_is_recorded_and_staging_cleaned(
    warehouse: RedshiftWarehouse, data_api: PostgresDataApi, redshift_db: str, tmp_path: Path
) -> None:
    data_api.failing_loads = "ERROR: permission denied for relation transactions"
    result = load_path(export(tmp_path / "c.csv"), "landing/c.csv", warehouse=warehouse, key=KEY)
    assert (result.status, result.error_text) == (
        Status.FAILED,
        "Redshift statement failed: ERROR: permission denied for relation transactions",
    )
    assert staged_objects(data_api, result.load_id) == 0
    assert query(redshift_db, "select status from raw.loaded_files") == [("failed",)]


def test_a_card_key_that_does_not_match_its_version_refuses_the_load(
    warehouse: RedshiftWarehouse, redshift_db: str, tmp_path: Path
) -> None:
    load_path(export(tmp_path / "a.csv", "Ludlow"), "landing/a.csv", warehouse=warehouse, key=KEY)
    impostor = CardKey(b"another-key-entirely-0123456789ab", KEY.version)
    with pytest.raises(CardKeyMismatch, match="cafe rotate-key"):
        load_path(
            export(tmp_path / "b.csv", "Whitby"), "landing/b.csv", warehouse=warehouse, key=impostor
        )
    assert query(redshift_db, "select count(*) from raw.card_keys") == [(1,)]
    assert query(redshift_db, "select distinct branch_name from raw.transactions") == [("Ludlow",)]
    [(status, error_text)] = query(
        redshift_db,
        "select status, error_text from raw.loaded_files where source_key = 'landing/b.csv'",
    )
    assert status == "failed" and "rs-v1" in error_text and "\n" not in error_text


def test_every_statement_the_writer_sends_parses_as_redshift(
    warehouse: RedshiftWarehouse, data_api: PostgresDataApi, tmp_path: Path
) -> None:
    path = export(tmp_path / "c.csv")
    key = "landing/o'brien\tbranch.csv"  # a quote and a control character in a literal
    load_path(path, key, warehouse=warehouse, key=KEY)  # card key, started, staged load
    load_path(path, key, warehouse=warehouse, key=KEY)  # unstaged (duplicate) load
    load_path(tmp_path / "c.csv", "landing/notes.txt", warehouse=warehouse, key=KEY)  # refused
    shapes = {re.sub(r"'[^']*'", "''", statement) for statement in data_api.sql}
    assert len(shapes) >= 12
    for statement in sorted(set(data_api.sql)):
        tree = sqlfluff.parse(statement, dialect="redshift")  # raises on unparsable SQL
        assert "unparsable" not in repr(tree), statement


def _redshift_columns() -> dict[str, list[str]]:
    """Each Redshift table's columns, in order, after the DDL and every migration."""
    columns: dict[str, list[str]] = {}
    for sql in [*REDSHIFT_DDL, *(sql for _, sql in REDSHIFT_MIGRATIONS)]:
        created = re.search(r'create table if not exists "raw"\.(\w+) \((.*)\)', sql, re.S)
        if created:
            body = created[2].split("primary key")[0]
            columns[created[1]] = re.findall(r"^\s*(\w+) ", body, re.M)
        added = re.search(r'alter table "raw"\.(\w+) add column (\w+) ', sql)
        if added:
            columns[added[1]].append(added[2])
    return columns


def test_the_redshift_tables_have_the_loader_columns_in_order_and_no_defaults() -> None:
    # A Parquet COPY fills columns by position, and the writer names the rest.
    # The Redshift DDL and migrations, read back, give every raw table the loader's columns.
    assert _redshift_columns() == {
        table: list(columns) for table, columns in RAW_TABLE_COLUMNS.items()
    }
    # A Redshift default must have its column's type; the writer stamps times instead.
    for sql in [*REDSHIFT_DDL, *(sql for _, sql in REDSHIFT_MIGRATIONS)]:
        assert " default " not in sql.lower(), sql
        tree = sqlfluff.parse(sql, dialect="redshift")
        assert "unparsable" not in repr(tree), sql


def test_sql_literals_escape_quotes_backslashes_and_control_characters() -> None:
    assert sql_literal("O'Neil\\x") == "'O''Neil\\\\x'"
    assert sql_literal(None) == "null" and sql_literal(True) == "true" and sql_literal(3) == "3"
    assert sql_literal("line\nbreak") == "('line' || chr(10) || 'break')"
    assert sql_literal(datetime(2024, 1, 2, 3, 4, tzinfo=UTC)) == "'2024-01-02 03:04:00+00:00'"
