"""DDL of the loader's own tables in schema `raw` (columns as docs/contracts.md gives them).

The tables: `transactions`, `rejected_rows` and the ledger `loaded_files` (what loads
write), `card_keys` (a fingerprint per card-key version, with its overlap end and
retirement), `card_links` (during a key rotation's overlap window, the link between the
two versions' hashes of one card) and `privacy_audit` (every rotation, retirement,
erasure, access request and retention run, with counts; see docs/privacy.md).

PostgreSQL: `ensure_schema` creates and migrates the tables idempotently, every statement
`if not exists`, so a loader of any age can run against a database of any age. Columns
added after the first release go to `POSTGRES_MIGRATIONS` as `add column if not exists`.
Concurrent first loads would race on the catalogue (two `create table if not exists` can
both miss and one fails), so the DDL runs under a transaction-scoped advisory lock.

The ledger's integrity is the database's job, not only the writers': check constraints
(`LEDGER_CHECKS`) say which statuses exist, that rows add up, that only loads hold rows or
are current, that a duplicate names what it copies and that only a `started` row is open;
a partial unique index keeps one current version per key. A check constraint's name ends
with a hash of its expression, so changing a rule changes the name: `ensure_schema` sees a
database whose constraints are not exactly the expected names as out of date, drops the
constraints it does not expect and adds the missing ones (validated against every row).

Redshift: `RAW` is a reserved word there, so the schema is quoted (`"raw"`) in its DDL and
in every statement the Redshift writer sends. `REDSHIFT_DDL` is run once at deploy time
(the Data API user may not own DDL). Redshift has no `add column if not exists`, and a
Parquet COPY needs the table's columns exactly, so a later change to a Redshift table is
appended to `REDSHIFT_MIGRATIONS` as an `(id, sql)` pair: `infra/bootstrap_warehouse.py`
(run by `make deploy`) applies the pairs it has not applied yet, in order, each in one
transaction with its record in `"raw".schema_migrations`. Ids never change once deployed.
Redshift enforces no check, primary key or unique constraint: there the writer alone keeps
the rules above, deciding under a table lock (see `loader.writers.redshift`).
The Redshift tables have no time defaults: a default must have its column's type
there, `getdate()` is a plain timestamp, and the writer stamps `loaded_at` and `rejected_at`.
`raw.transactions` is distributed on `source_key` so a file's rows sit on one slice, which
makes the per-file delete of a replacement cheap, and sorted on (`source_key`,
`line_number`), the key the delete and the staging model read by. The small ledger is
copied to every node (`diststyle all`). Varchar sizes are bytes on Redshift; the
validation limits use bytes so that a row PostgreSQL accepts Redshift accepts too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from loader.ledger import Status

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
# `card_hash`/`card_key_version`: the keyed hash of the card number a refused line holds
# (its card column, else a card number found anywhere in it), so that an erasure or an
# access request finds the line although its text is masked.
REJECTED_COLUMNS: Final = (
    "source_key",
    "file_checksum",
    "line_number",
    "reason",
    "raw_line",
    "card_hash",
    "card_key_version",
)
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
    "duplicate_of",
    "source_modified_at",
    "source_version",
    "file_encoding",
    "file_header",
    "unknown_columns",
    "rows_revised_at",
)
CARD_KEY_COLUMNS: Final = (
    "key_version",
    "fingerprint",
    "recorded_at",
    "overlap_ends_at",
    "retired_at",
)
CARD_LINK_COLUMNS: Final = (
    "card_hash",
    "card_key_version",
    "previous_card_hash",
    "previous_key_version",
    "linked_at",
)
PRIVACY_AUDIT_COLUMNS: Final = (
    "audit_id",
    "action",
    "performed_at",
    "performed_by",
    "reason",
    "key_version",
    "card_fingerprint",
    "transactions_affected",
    "rejected_rows_affected",
    "links_affected",
    "details",
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
    # Its check constraints are LEDGER_CHECKS, added by ensure_schema.
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
        duplicate_of varchar(1024),
        source_modified_at timestamptz,
        source_version varchar(1024),
        file_encoding varchar(16),
        file_header varchar(4096),
        unknown_columns varchar(4096),
        rows_revised_at timestamptz
    )
    """,
    # The database itself guarantees one current version per key.
    """
    create unique index if not exists loaded_files_one_current
        on raw.loaded_files (source_key) where is_current
    """,
    "create index if not exists loaded_files_started_at on raw.loaded_files (started_at)",
    # Finds a current file with the same bytes under another key (a copy).
    """
    create index if not exists loaded_files_current_checksum
        on raw.loaded_files (file_checksum) where is_current
    """,
    """
    create table if not exists raw.rejected_rows (
        source_key varchar(1024) not null,
        file_checksum char(64) not null,
        line_number integer not null,
        reason varchar(1024) not null,
        raw_line varchar(65535),
        rejected_at timestamptz not null default now(),
        card_hash char(64),
        card_key_version varchar(64),
        primary key (source_key, line_number)
    )
    """,
    """
    create table if not exists raw.card_keys (
        key_version varchar(64) primary key,
        fingerprint char(64) not null,
        recorded_at timestamptz not null default now(),
        overlap_ends_at timestamptz,
        retired_at timestamptz
    )
    """,
    """
    create table if not exists raw.card_links (
        card_hash char(64) not null,
        card_key_version varchar(64) not null,
        previous_card_hash char(64) not null,
        previous_key_version varchar(64) not null,
        linked_at timestamptz not null default now(),
        primary key (card_hash, previous_card_hash)
    )
    """,
    """
    create table if not exists raw.privacy_audit (
        audit_id varchar(36) primary key,
        action varchar(32) not null,
        performed_at timestamptz not null,
        performed_by varchar(256),
        reason varchar(1024),
        key_version varchar(64),
        card_fingerprint varchar(256),
        transactions_affected integer not null,
        rejected_rows_affected integer not null,
        links_affected integer not null,
        details varchar(4096)
    )
    """,
)

# Changes after the first release; each must be idempotent (`add column if not exists`,
# an update that finds nothing the second time).
POSTGRES_MIGRATIONS: Final[tuple[str, ...]] = (
    "alter table raw.transactions add column if not exists card_key_version varchar(64)",
    "alter table raw.loaded_files add column if not exists loader_version varchar(32)",
    "alter table raw.loaded_files add column if not exists duplicate_of varchar(1024)",
    "alter table raw.loaded_files add column if not exists source_modified_at timestamptz",
    "alter table raw.loaded_files add column if not exists source_version varchar(1024)",
    "alter table raw.loaded_files add column if not exists file_encoding varchar(16)",
    "alter table raw.loaded_files add column if not exists file_header varchar(4096)",
    "alter table raw.loaded_files add column if not exists unknown_columns varchar(4096)",
    "alter table raw.loaded_files add column if not exists rows_revised_at timestamptz",
    "alter table raw.rejected_rows add column if not exists card_hash char(64)",
    "alter table raw.rejected_rows add column if not exists card_key_version varchar(64)",
    "alter table raw.card_keys add column if not exists overlap_ends_at timestamptz",
    "alter table raw.card_keys add column if not exists retired_at timestamptz",
    # Before duplicate_of existed a duplicate was always a re-delivery of its own key.
    "update raw.loaded_files set duplicate_of = source_key"
    " where status = 'duplicate' and duplicate_of is null",
)


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


_LOADS: Final = (Status.LOADED.value, Status.REPLACED.value)


@dataclass(frozen=True, slots=True)
class CheckConstraint:
    table: str
    rule: str
    expression: str

    @property
    def name(self) -> str:
        """`<table>_<rule>_<hash of the expression>`: a changed rule gets a new name."""
        digest = hashlib.sha256(self.expression.encode()).hexdigest()[:8]
        return f"{self.table}_{self.rule}_{digest}"

    @property
    def add_statement(self) -> str:
        return f"alter table raw.{self.table} add constraint {self.name} check ({self.expression})"


LEDGER_CHECKS: Final = (
    CheckConstraint("loaded_files", "status", f"status in ({_quoted(tuple(Status))})"),
    CheckConstraint("loaded_files", "rows_add_up", "rows_read = rows_loaded + rows_rejected"),
    CheckConstraint(
        "loaded_files", "rows_only_for_loads", f"status in ({_quoted(_LOADS)}) or rows_read = 0"
    ),
    CheckConstraint(
        "loaded_files", "current_only_for_loads", f"not is_current or status in ({_quoted(_LOADS)})"
    ),
    CheckConstraint(
        "loaded_files",
        "duplicate_names_its_copy",
        "(status = 'duplicate') = (duplicate_of is not null)",
    ),
    CheckConstraint(
        "loaded_files", "open_only_while_started", "(status = 'started') = (finished_at is null)"
    ),
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
REDSHIFT_MIGRATIONS: Final[tuple[tuple[str, str], ...]] = (
    (
        "0001_loaded_files_duplicate_of",
        'alter table "raw".loaded_files add column duplicate_of varchar(1024)',
    ),
    (
        "0002_loaded_files_source_modified_at",
        'alter table "raw".loaded_files add column source_modified_at timestamptz',
    ),
    (
        "0003_loaded_files_source_version",
        'alter table "raw".loaded_files add column source_version varchar(1024)',
    ),
    (
        "0004_loaded_files_file_encoding",
        'alter table "raw".loaded_files add column file_encoding varchar(16)',
    ),
    (
        "0005_loaded_files_file_header",
        'alter table "raw".loaded_files add column file_header varchar(4096)',
    ),
    (
        "0006_loaded_files_unknown_columns",
        'alter table "raw".loaded_files add column unknown_columns varchar(4096)',
    ),
    (
        "0007_loaded_files_duplicates_name_their_key",
        'update "raw".loaded_files set duplicate_of = source_key'
        " where status = 'duplicate' and duplicate_of is null",
    ),
    (
        "0008_card_keys",
        """
        create table if not exists "raw".card_keys (
            key_version varchar(64) not null,
            fingerprint char(64) not null,
            recorded_at timestamptz not null,
            primary key (key_version)
        )
        diststyle all
        """,
    ),
    (
        "0009_loaded_files_rows_revised_at",
        'alter table "raw".loaded_files add column rows_revised_at timestamptz',
    ),
    (
        "0010_rejected_rows_card_hash",
        'alter table "raw".rejected_rows add column card_hash char(64)',
    ),
    (
        "0011_rejected_rows_card_key_version",
        'alter table "raw".rejected_rows add column card_key_version varchar(64)',
    ),
    (
        "0012_card_keys_overlap_ends_at",
        'alter table "raw".card_keys add column overlap_ends_at timestamptz',
    ),
    (
        "0013_card_keys_retired_at",
        'alter table "raw".card_keys add column retired_at timestamptz',
    ),
    (
        "0014_card_links",
        """
        create table if not exists "raw".card_links (
            card_hash char(64) not null,
            card_key_version varchar(64) not null,
            previous_card_hash char(64) not null,
            previous_key_version varchar(64) not null,
            linked_at timestamptz not null,
            primary key (card_hash, previous_card_hash)
        )
        """,
    ),
    (
        "0015_privacy_audit",
        """
        create table if not exists "raw".privacy_audit (
            audit_id varchar(36) not null,
            action varchar(32) not null,
            performed_at timestamptz not null,
            performed_by varchar(256),
            reason varchar(1024),
            key_version varchar(64),
            card_fingerprint varchar(256),
            transactions_affected integer not null,
            rejected_rows_affected integer not null,
            links_affected integer not null,
            details varchar(4096),
            primary key (audit_id)
        )
        """,
    ),
)

# Each raw table's columns in the order the Redshift DDL and its migrations leave them
# (a migration appends): what a Parquet COPY, which fills columns by position, must follow.
RAW_TABLE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "transactions": (*TRANSACTION_COLUMNS, "loaded_at"),
    "loaded_files": LEDGER_COLUMNS,
    "rejected_rows": (*REJECTED_COLUMNS[:5], "rejected_at", *REJECTED_COLUMNS[5:]),
    "card_keys": CARD_KEY_COLUMNS,
    "card_links": CARD_LINK_COLUMNS,
    "privacy_audit": PRIVACY_AUDIT_COLUMNS,
}

_EXPECTED_COLUMNS: Final = tuple(
    (table, column) for table, columns in RAW_TABLE_COLUMNS.items() for column in columns
)

_ensured: set[tuple[str, int]] = set()


def _check_constraints(connection: psycopg.Connection[tuple[Any, ...]]) -> set[str]:
    found = connection.execute(
        "select conname from pg_constraint"
        " where contype = 'c' and conrelid = to_regclass('raw.loaded_files')"
    ).fetchall()
    return {str(name) for (name,) in found}


def _schema_is_current(connection: psycopg.Connection[tuple[Any, ...]]) -> bool:
    found = connection.execute(
        "select count(*) from information_schema.columns"
        " where table_schema = 'raw' and (table_name || '.' || column_name) = any(%s)",
        ([f"{table}.{column}" for table, column in _EXPECTED_COLUMNS],),
    ).fetchone()
    if not (found and found[0] == len(_EXPECTED_COLUMNS)):
        return False
    return _check_constraints(connection) == {check.name for check in LEDGER_CHECKS}


def _reconcile_checks(connection: psycopg.Connection[tuple[Any, ...]]) -> None:
    """Drop the ledger's check constraints that are not expected, add the missing ones."""
    existing = _check_constraints(connection)
    expected = {check.name: check for check in LEDGER_CHECKS}
    for name in sorted(existing - expected.keys()):
        connection.execute(f'alter table raw.loaded_files drop constraint "{name}"')
    for name in sorted(expected.keys() - existing):
        connection.execute(expected[name].add_statement)


def ensure_schema(connection: psycopg.Connection[tuple[Any, ...]]) -> None:
    """Create or migrate the raw tables (checked once per process and database).

    The DDL runs only when a column or a check constraint differs from what this loader
    expects: `alter table` takes an exclusive lock even when the column exists, which
    would make every load wait for the loads in flight.
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
                _reconcile_checks(connection)
    _ensured.add(identity)


def card_key_versions_in_use(database_url: str) -> list[str]:
    """The card key versions the warehouse already depends on (hashes or fingerprints).

    Empty for a warehouse where a new key can be created without splitting anyone.
    """
    with psycopg.connect(database_url, autocommit=True) as connection:
        present = connection.execute(
            "select to_regclass('raw.transactions') is not null,"
            " to_regclass('raw.card_keys') is not null"
        ).fetchone()
        parts = []
        if present and present[0]:
            parts.append(
                "select distinct coalesce(card_key_version, '(unversioned)')"
                " from raw.transactions where card_hash is not null"
            )
        if present and present[1]:
            parts.append("select key_version from raw.card_keys")
        if not parts:
            return []
        rows = connection.execute(" union ".join(parts) + " order by 1").fetchall()
        return [str(version) for (version,) in rows]
