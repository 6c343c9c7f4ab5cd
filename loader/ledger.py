"""The load ledger (`raw.loaded_files`): what happened to every version of every file.

The ledger decides, under the per-key lock a writer holds, whether a file version is new
(`loaded`), a corrected re-export of a key already loaded (`replaced`), or the same bytes
again (`duplicate`, skipped). `failed` and `refused` attempts are recorded too, never
current. Exactly one row per key is current: the version whose rows are in the warehouse.
"""

from __future__ import annotations

import enum
import importlib.metadata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from loader.errors import ConfigurationError
from loader.filenames import parse_export_name
from loader.settings import Settings


def _loader_version() -> str:
    try:
        return f"cafe-elt {importlib.metadata.version('cafe-elt')}"
    except importlib.metadata.PackageNotFoundError:
        return "cafe-elt (not installed)"


LOADER_VERSION = _loader_version()


class Status(enum.StrEnum):
    LOADED = "loaded"
    REPLACED = "replaced"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    REFUSED = "refused"

    @property
    def is_success(self) -> bool:
        """Processed for good: a retry would not change the outcome."""
        return self is not Status.FAILED


@dataclass(frozen=True, slots=True)
class FileVersion:
    """One file version being loaded: the ledger row's identity and file facts."""

    source_key: str
    checksum: str
    size_bytes: int
    load_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def branch_name(self) -> str | None:
        parsed = parse_export_name(self.source_key)
        return parsed.branch_name if parsed else None

    @property
    def exported_at(self) -> datetime | None:
        parsed = parse_export_name(self.source_key)
        return parsed.exported_at if parsed else None


@dataclass(frozen=True, slots=True)
class RowCounts:
    read: int = 0
    loaded: int = 0
    rejected: int = 0

    def __add__(self, other: RowCounts) -> RowCounts:
        return RowCounts(
            self.read + other.read, self.loaded + other.loaded, self.rejected + other.rejected
        )


@dataclass(frozen=True, slots=True)
class LoadResult:
    load_id: str
    source_key: str
    status: Status
    counts: RowCounts
    seconds: float
    error_text: str | None = None


class Decision(enum.Enum):
    LOAD = Status.LOADED
    REPLACE = Status.REPLACED
    SKIP = Status.DUPLICATE


def ledger_values(
    file: FileVersion, status: Status, is_current: bool, counts: RowCounts
) -> tuple[object, ...]:
    """The ledger row's values, in `raw.loaded_files` column order up to `started_at`.

    Both writers insert the same row; each adds `finished_at` (its own clock), the error
    text and the loader version in its dialect.
    """
    return (
        file.load_id,
        file.source_key,
        file.checksum,
        file.size_bytes,
        file.branch_name,
        file.exported_at,
        status.value,
        is_current,
        counts.read,
        counts.loaded,
        counts.rejected,
        file.started_at,
    )


def decide(current_checksum: str | None, checksum: str) -> Decision:
    """What to do with a file version given the key's current checksum (None: never loaded)."""
    if current_checksum is None:
        return Decision.LOAD
    return Decision.SKIP if current_checksum == checksum else Decision.REPLACE


def result_of(
    file: FileVersion, status: Status, counts: RowCounts, error: str | None
) -> LoadResult:
    seconds = (datetime.now(UTC) - file.started_at).total_seconds()
    return LoadResult(file.load_id, file.source_key, status, counts, seconds, error)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    load_id: str
    source_key: str
    status: str
    is_current: bool
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    started_at: datetime | None
    finished_at: datetime | None
    error_text: str | None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


_LEDGER_COLUMNS = (
    "load_id, source_key, status, is_current, rows_read, rows_loaded, rows_rejected,"
    " started_at, finished_at, error_text"
)


def _database_url(settings: Settings) -> str:
    if settings.warehouse != "postgres":
        raise ConfigurationError("the ledger can be listed from a PostgreSQL warehouse only")
    if not settings.database_url:
        raise ConfigurationError("no database: run `cafe up` or set CAFE_DATABASE_URL")
    return settings.database_url


def _ledger_exists(connection: psycopg.Connection[tuple[Any, ...]]) -> bool:
    found = connection.execute("select to_regclass('raw.loaded_files') is not null").fetchone()
    return bool(found and found[0])


def recent_loads(settings: Settings, limit: int = 20) -> list[LedgerRow]:
    """The latest `limit` ledger rows, newest first (empty before anything was loaded)."""
    with psycopg.connect(_database_url(settings)) as connection:
        if not _ledger_exists(connection):
            return []
        with connection.cursor(row_factory=class_row(LedgerRow)) as cursor:
            cursor.execute(
                f"select {_LEDGER_COLUMNS} from raw.loaded_files"
                " order by started_at desc, finished_at desc nulls first limit %s",
                (limit,),
            )
            return cursor.fetchall()


def latest_loads_of(settings: Settings, source_keys: Sequence[str]) -> dict[str, LedgerRow]:
    """The most recent ledger row of each key that has one."""
    with psycopg.connect(_database_url(settings)) as connection:
        if not _ledger_exists(connection):
            return {}
        with connection.cursor(row_factory=class_row(LedgerRow)) as cursor:
            cursor.execute(
                f"select distinct on (source_key) {_LEDGER_COLUMNS} from raw.loaded_files"
                " where source_key = any(%s) order by source_key, started_at desc",
                (list(source_keys),),
            )
            return {row.source_key: row for row in cursor.fetchall()}
