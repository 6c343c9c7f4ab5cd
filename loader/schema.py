"""DDL of the loader's own tables in schema `raw` (columns as docs/contracts.md gives them).

PostgreSQL: `ensure_schema` creates and migrates the tables idempotently, every statement
`if not exists`, so a loader of any age can run against a database of any age. Columns
added after the first release go to `POSTGRES_MIGRATIONS` as `add column if not exists`.
Concurrent first loads would race on the catalogue (two `create table if not exists` can
both miss and one fails), so the DDL runs under a transaction-scoped advisory lock.

Redshift: `RAW` is a reserved word there, so the schema is quoted (`"raw"`) in its DDL and
in every statement the Redshift writer sends. `REDSHIFT_DDL` is run once at deploy time
(the Data API user may not own DDL). Redshift has no `add column if not exists`, and a
Parquet COPY needs the table's columns exactly, so a later change to a Redshift table is
appended to `REDSHIFT_MIGRATIONS` as an `(id, sql)` pair: `infra/bootstrap_warehouse.py`
(run by `make deploy`) applies the pairs it has not applied yet, in order, each in one
transaction with its record in `"raw".schema_migrations`. Ids never change once deployed.
The Redshift tables have no time defaults: a default must have its column's type
there, `getdate()` is a plain timestamp, and the writer stamps `loaded_at` and `rejected_at`.
`raw.transactions` is distributed on `source_key` so a file's rows sit on one slice, which
makes the per-file delete of a replacement cheap, and sorted on (`source_key`,
`line_number`), the key the delete and the staging model read by. The small ledger is
copied to every node (`diststyle all`). Varchar sizes are bytes on Redshift; the
validation limits use bytes so that a row PostgreSQL accepts Redshift accepts too.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

TRANSACTION_COLUMNS: Final = (
    "source_key",
    "line_number",
    "file_checksum",
    "transaction_date",
    "branch_name",
    "customer_name",
    "basket",
    "total_amount",
    "payment_type",
    "card_hash",
    "card_key_version",
)
REJECTED_COLUMNS: Final = ("source_key", "file_checksum", "line_number", "reason", "raw_line")
LEDGER_COLUMNS: Final = (
    "load_id",
    "source_key",
    "file_checksum",
    "file_size_bytes",
    "branch_name",
    "file_exported_at",
    "status",
    "is_current",
    "rows_read",
    "rows_loaded",
    "rows_rejected",
    "started_at",
    "finished_at",
    "error_text",
    "loader_version",
)

# An arbitrary constant: the advisory lock that serialises the loader's DDL.
_DDL_LOCK_ID: Final = 0x_CAFE_0DD1

POSTGRES_DDL: Final[tuple[str, ...]] = (
    "create schema if not exists raw",
    """
    create table if not exists raw.transactions (
        source_key varchar(1024) not null,
        line_number integer not null,
        file_checksum char(64) not null,
        transaction_date varchar(32) not null,
        branch_name varchar(256) not null,
        customer_name varchar(256),
        basket varchar(65535) not null,
        total_amount numeric(12, 2) not null,
        payment_type varchar(8) not null,
        card_hash char(64),
        card_key_version varchar(64),
        loaded_at timestamptz not null default now(),
        primary key (source_key, line_number)
    )
    """,
    """
    create table if not exists raw.loaded_files (
        load_id varchar(36) primary key,
        source_key varchar(1024) not null,
        file_checksum char(64) not null,
        file_size_bytes bigint,
        branch_name varchar(256),
        file_exported_at timestamp,
        status varchar(16) not null,
        is_current boolean not null,
        rows_read integer not null,
        rows_loaded integer not null,
        rows_rejected integer not null,
        started_at timestamptz,
        finished_at timestamptz,
        error_text varchar(4096),
        loader_version varchar(32),
        constraint loaded_files_status_check
            check (status in ('loaded', 'replaced', 'duplicate', 'failed', 'refused')),
        constraint loaded_files_rows_add_up check (rows_read = rows_loaded + rows_rejected)
    )
    """,
    # The database itself guarantees one current version per key.
    """
    create unique index if not exists loaded_files_one_current
        on raw.loaded_files (source_key) where is_current
    """,
    "create index if not exists loaded_files_started_at on raw.loaded_files (started_at)",
    """
    create table if not exists raw.rejected_rows (
        source_key varchar(1024) not null,
        file_checksum char(64) not null,
        line_number integer not null,
        reason varchar(1024) not null,
        raw_line varchar(65535),
        rejected_at timestamptz not null default now(),
        primary key (source_key, line_number)
    )
    """,
)

# Columns added after the first release; each must be `add column if not exists`.
POSTGRES_MIGRATIONS: Final[tuple[str, ...]] = (
    "alter table raw.transactions add column if not exists card_key_version varchar(64)",
    "alter table raw.loaded_files add column if not exists loader_version varchar(32)",
)

REDSHIFT_DDL: Final[tuple[str, ...]] = (
    'create schema if not exists "raw"',
    """
    create table if not exists "raw".transactions (
        source_key varchar(1024) not null,
        line_number integer not null,
        file_checksum char(64) not null,
        transaction_date varchar(32) not null,
        branch_name varchar(256) not null,
        customer_name varchar(256),
        basket varchar(65535) not null,
        total_amount numeric(12, 2) not null,
        payment_type varchar(8) not null,
        card_hash char(64),
        card_key_version varchar(64),
        loaded_at timestamptz not null,
        primary key (source_key, line_number)
    )
    diststyle key
    distkey (source_key)
    compound sortkey (source_key, line_number)
    """,
    """
    create table if not exists "raw".loaded_files (
        load_id varchar(36) not null,
        source_key varchar(1024) not null,
        file_checksum char(64) not null,
        file_size_bytes bigint,
        branch_name varchar(256),
        file_exported_at timestamp,
        status varchar(16) not null,
        is_current boolean not null,
        rows_read integer not null,
        rows_loaded integer not null,
        rows_rejected integer not null,
        started_at timestamptz,
        finished_at timestamptz,
        error_text varchar(4096),
        loader_version varchar(32),
        primary key (load_id)
    )
    diststyle all
    sortkey (started_at)
    """,
    """
    create table if not exists "raw".rejected_rows (
        source_key varchar(1024) not null,
        file_checksum char(64) not null,
        line_number integer not null,
        reason varchar(1024) not null,
        raw_line varchar(65535),
        rejected_at timestamptz not null,
        primary key (source_key, line_number)
    )
    diststyle key
    distkey (source_key)
    sortkey (source_key, line_number)
    """,
)

# Changes to the Redshift tables after the first deploy, as (migration id, SQL) pairs,
# applied in this order by the bootstrap. Append only: never edit or reorder a deployed pair.
# Each pair runs in one transaction with its record, so it may not be a statement Redshift
# refuses inside a transaction block (`alter table ... alter column ... type`): use add
# column, update, drop column and rename instead. Keep REDSHIFT_DDL the first release's shape
# (a fresh database runs it, then every migration).
REDSHIFT_MIGRATIONS: Final[tuple[tuple[str, str], ...]] = ()

_EXPECTED_COLUMNS: Final = (
    *(("transactions", column) for column in (*TRANSACTION_COLUMNS, "loaded_at")),
    *(("rejected_rows", column) for column in (*REJECTED_COLUMNS, "rejected_at")),
    *(("loaded_files", column) for column in LEDGER_COLUMNS),
)

_ensured: set[tuple[str, int]] = set()


def _schema_is_current(connection: psycopg.Connection[tuple[Any, ...]]) -> bool:
    found = connection.execute(
        "select count(*) from information_schema.columns"
        " where table_schema = 'raw' and (table_name || '.' || column_name) = any(%s)",
        ([f"{table}.{column}" for table, column in _EXPECTED_COLUMNS],),
    ).fetchone()
    return bool(found and found[0] == len(_EXPECTED_COLUMNS))


def ensure_schema(connection: psycopg.Connection[tuple[Any, ...]]) -> None:
    """Create or migrate the raw tables (checked once per process and database).

    The DDL runs only when a column is missing: `alter table` takes an exclusive lock even
    when the column exists, which would make every load wait for the loads in flight.
    """
    database = connection.execute(
        "select current_setting('port') || '/' || current_database(),"
        " (select oid from pg_database where datname = current_database())::bigint"
    ).fetchone()
    identity = (str(database[0]), int(database[1])) if database else ("", 0)
    if identity in _ensured:
        return
    if not _schema_is_current(connection):
        with connection.transaction():
            connection.execute("select pg_advisory_xact_lock(%s)", (_DDL_LOCK_ID,))
            # Checked again under the lock: a loader that waited here must not re-run the
            # DDL, whose exclusive locks would deadlock with the first loader's COPY.
            if not _schema_is_current(connection):
                for statement in (*POSTGRES_DDL, *POSTGRES_MIGRATIONS):
                    connection.execute(statement)
    _ensured.add(identity)
