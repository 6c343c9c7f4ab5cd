"""Where the privacy operations run their SQL: PostgreSQL (psycopg) or Redshift (the Data
API, through the loader's Redshift writer). One statement text serves both.

Statements carry `%(name)s` placeholders and their values: psycopg binds them on
PostgreSQL; on Redshift, whose `BatchExecuteStatement` takes no parameters, they are
inlined as literals (`loader.writers.redshift.sql_literal`). Either way a value never
becomes SQL text unquoted. The schema is written `"raw"` (reserved on Redshift, the same
schema on PostgreSQL).

`execute` runs its statements as one transaction. Temporary tables created by one
`execute` are gone by the next (a PostgreSQL connection per call; a Data API batch is a
session of its own), so a transaction can count what it changes in temporary tables and
write the counts into its audit record, the same way on both warehouses.

On PostgreSQL, `execute(..., unless_loading=keys)` runs only when no load of those file
keys is in flight: it tries the loader's per-key advisory locks (`lock_id`) and gives up at
once (returns False) when one is held, so a long load is never waited for and never
blocked. Redshift has no advisory locks: there, a statement list that must not interleave
with loads starts with `lock "raw".loaded_files`, as every load batch does.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import psycopg

from loader.errors import ConfigurationError
from loader.schema import ensure_schema
from loader.settings import Settings
from loader.writers.postgres import lock_id
from loader.writers.redshift import RedshiftWarehouse, sql_literal

_PLACEHOLDER: Final = re.compile(r"%\((\w+)\)s")


class Dialect(enum.StrEnum):
    POSTGRES = "postgres"
    REDSHIFT = "redshift"


@dataclass(frozen=True)
class Statement:
    """SQL with `%(name)s` placeholders, and their values."""

    sql: str
    params: Mapping[str, object] = field(default_factory=dict)


def in_list(name: str, values: Iterable[object]) -> tuple[str, dict[str, object]]:
    """`(%(name_0)s, %(name_1)s, ...)` and its values: an IN list both warehouses take.

    An empty list becomes `(null)`, which matches nothing.
    """
    params = {f"{name}_{index}": value for index, value in enumerate(values)}
    if not params:
        return "(null)", {}
    return "(" + ", ".join(f"%({key})s" for key in params) + ")", params


def inlined(statement: Statement) -> str:
    """The statement with its values as Redshift literals."""

    def literal(match: re.Match[str]) -> str:
        return sql_literal(statement.params[match[1]])

    text = _PLACEHOLDER.sub(literal, statement.sql)
    if "%(" in text:
        raise ValueError("a placeholder was left unbound")
    return text


class SqlStore(Protocol):
    dialect: Dialect

    def query(self, statement: Statement) -> list[tuple[Any, ...]]:
        """The rows of one query."""

    def execute(
        self, statements: Sequence[Statement], *, unless_loading: Sequence[str] = ()
    ) -> list[int] | None:
        """Run `statements` as one transaction.

        The rows each statement changed, where the warehouse reports them (PostgreSQL; an
        empty list on Redshift); None when it did not run because a load of one of the
        `unless_loading` file keys is in flight (PostgreSQL only).
        """


class PostgresStore:
    dialect = Dialect.POSTGRES

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        connection = psycopg.connect(
            self.database_url, autocommit=True, application_name="cafe-privacy"
        )
        ensure_schema(connection)
        return connection

    def query(self, statement: Statement) -> list[tuple[Any, ...]]:
        with self._connect() as connection:
            return connection.execute(statement.sql.encode(), statement.params).fetchall()

    def execute(
        self, statements: Sequence[Statement], *, unless_loading: Sequence[str] = ()
    ) -> list[int] | None:
        changed: list[int] = []
        with self._connect() as connection, connection.transaction():
            for key in sorted(set(unless_loading)):
                [[locked]] = connection.execute(
                    "select pg_try_advisory_xact_lock(%s)", (lock_id(key),)
                ).fetchall()
                if not locked:
                    return None
            for statement in statements:
                cursor = connection.execute(statement.sql.encode(), statement.params)
                changed.append(max(cursor.rowcount, 0))
        return changed


class RedshiftStore:
    dialect = Dialect.REDSHIFT

    def __init__(self, warehouse: RedshiftWarehouse) -> None:
        self.warehouse = warehouse

    def query(self, statement: Statement) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.warehouse.query(inlined(statement))]

    def execute(
        self, statements: Sequence[Statement], *, unless_loading: Sequence[str] = ()
    ) -> list[int] | None:
        self.warehouse.run_transaction([inlined(statement) for statement in statements])
        return []


def open_sql_store(settings: Settings) -> SqlStore:
    """The store of the configured warehouse (`CAFE_WAREHOUSE`)."""
    if settings.warehouse == "postgres":
        if not settings.database_url:
            raise ConfigurationError("no database: run `cafe up` or set CAFE_DATABASE_URL")
        return PostgresStore(settings.database_url)
    if settings.warehouse == "redshift":
        return RedshiftStore(RedshiftWarehouse.from_settings(settings))
    raise ConfigurationError(
        f"CAFE_WAREHOUSE must be postgres or redshift, not {settings.warehouse!r}"
    )


def lock_tables(dialect: Dialect, tables: Sequence[str]) -> Statement:
    """Lock `tables` (in this order) against writes until the transaction ends; reads go on.

    The order must be the order in which loads take them, so that the two never wait for
    each other: on PostgreSQL a load writes transactions, then rejected rows, card links
    and the ledger; on Redshift every load batch starts with the ledger.
    """
    listed = ", ".join(f'"raw".{table}' for table in tables)
    if dialect is Dialect.POSTGRES:
        return Statement(f"lock table {listed} in share row exclusive mode")
    return Statement(f"lock {listed}")
