"""The load ledger (`raw.loaded_files`): what happened to every version of every file.

Every attempt gets a row. A load commits a `started` row before its work begins and closes
that same row with the outcome in the transaction that writes the file's rows, so an
attempt that dies (a Lambda timeout, a SIGKILL) stays visible as a `started` row that never
closed, while its rows are rolled back. `failed` and `refused` attempts close their row (or
write one) on their own.

What a new file version becomes is decided under the writer's lock, by one SQL rule both
writers run (`decision_query`), in this order:

1. `duplicate`: the key's current version has the same bytes (a re-delivery);
   `duplicate_of` is the key itself;
2. `stale`: the version is older than the key's current one: by the S3 event sequencer
   when both have one (S3 orders a key's events by it), else by the source's modification
   time (S3 LastModified or event time; a local file's mtime). Nothing is replaced;
3. `duplicate`: another key's current version has the same bytes (the export uploaded
   again under another name); `duplicate_of` names that key. Nothing is loaded;
4. `replaced`: the key has another current version: its rows are swapped in one transaction;
5. `loaded`: the key is new.

Exactly one row per key is current: the version whose rows are in the warehouse.
"""

from __future__ import annotations

import enum
import importlib.metadata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final

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
LEDGER_TABLE: Final = '"raw".loaded_files'  # quoted: `raw` is reserved on Redshift


class Status(enum.StrEnum):
    LOADED = "loaded"
    REPLACED = "replaced"
    DUPLICATE = "duplicate"
    STALE = "stale"
    REFUSED = "refused"
    FAILED = "failed"
    STARTED = "started"

    @property
    def is_success(self) -> bool:
        """Processed for good: a retry would not change the outcome."""
        return self not in (Status.FAILED, Status.STARTED)

    @property
    def holds_rows(self) -> bool:
        """The version's rows are (or were, until replaced) in the warehouse."""
        return self in (Status.LOADED, Status.REPLACED)


@dataclass(frozen=True, slots=True)
class SourceFacts:
    """Where a file version comes from, as far as the source tells.

    `modified_at`: S3 LastModified (or the event time), a local file's mtime.
    `sequencer`: the S3 event's sequencer (orders the events of one key).
    `version_id`: the S3 object version.
    """

    modified_at: datetime | None = None
    sequencer: str | None = None
    version_id: str | None = None

    @property
    def version_text(self) -> str | None:
        """`raw.loaded_files.source_version`: `sequencer=<hex> version=<id>`, known parts only."""
        parts = []
        if self.sequencer:
            parts.append(f"sequencer={self.sequencer.upper()}")
        if self.version_id:
            parts.append(f"version={self.version_id}")
        return " ".join(parts) or None


UNKNOWN_SOURCE: Final = SourceFacts()


@dataclass(frozen=True, slots=True)
class FileVersion:
    """One file version being loaded: the ledger row's identity and the file's facts.

    `source_key` is the key as stored: a card number in it is already masked.
    `card_key_version`/`card_key_fingerprint` name the key its cards are hashed with (the
    fingerprint, never the key), so a writer can check it against `raw.card_keys`;
    `link_key_*` the previous key that hashes them too during a rotation's overlap window.
    """

    source_key: str
    checksum: str
    size_bytes: int
    source: SourceFacts = UNKNOWN_SOURCE
    encoding: str | None = None
    header: str | None = None
    unknown_columns: str | None = None
    card_key_version: str | None = None
    card_key_fingerprint: str | None = None
    link_key_version: str | None = None
    link_key_fingerprint: str | None = None
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
    duplicate_of: str | None = None


def ledger_row(
    file: FileVersion,
    status: Status,
    *,
    is_current: bool = False,
    counts: RowCounts = RowCounts(),
    duplicate_of: str | None = None,
    error_text: str | None = None,
) -> dict[str, object]:
    """The ledger row's values by column, all but `finished_at`, which each writer stamps
    with its own clock (left null for a `started` row)."""
    return {
        "load_id": file.load_id,
        "source_key": file.source_key,
        "file_checksum": file.checksum,
        "file_size_bytes": file.size_bytes,
        "branch_name": file.branch_name,
        "file_exported_at": file.exported_at,
        "status": status.value,
        "is_current": is_current,
        "rows_read": counts.read,
        "rows_loaded": counts.loaded,
        "rows_rejected": counts.rejected,
        "started_at": file.started_at,
        "error_text": error_text,
        "loader_version": LOADER_VERSION,
        "duplicate_of": duplicate_of,
        "source_modified_at": file.source.modified_at,
        "source_version": file.source.version_text,
        "file_encoding": file.encoding,
        "file_header": file.header,
        "unknown_columns": file.unknown_columns,
        # Set later by an erasure that changes the version's rows (`loader.privacy`).
        "rows_revised_at": None,
    }


def decision_query(values: Mapping[str, str]) -> str:
    """The decision for one file version, as `select status, duplicate_of` (one row).

    `values` gives the SQL text (a bind placeholder or a literal) of `load_id`,
    `source_key`, `checksum`, `sequencer` and `modified_at`. Both writers run this under
    their lock; the statement is plain SQL that PostgreSQL and Redshift both take. A
    version whose `started` row is gone (someone deleted it) decides `failed`, so that no
    rows are written without their ledger row.
    """
    key, checksum = values["source_key"], values["checksum"]
    sequencer = f"cast({values['sequencer']} as varchar)"
    modified_at = f"cast({values['modified_at']} as timestamptz)"
    current = f"source_key = {key} and is_current"
    current_sequencer = (
        "nullif(split_part(split_part(current_version, 'sequencer=', 2), ' ', 1), '')"
    )
    is_older = (
        f"(({sequencer} is not null and {current_sequencer} is not null"
        f" and lpad({sequencer}, 64, '0') < lpad({current_sequencer}, 64, '0'))"
        f" or (({sequencer} is null or {current_sequencer} is null)"
        f" and {modified_at} < current_modified_at))"
    )
    return (
        "select"
        " case"
        " when is_started = 0 then 'failed'"
        f" when current_checksum = {checksum} then 'duplicate'"
        f" when {is_older} then 'stale'"
        " when copied_key is not null then 'duplicate'"
        " when current_checksum is not null then 'replaced'"
        " else 'loaded'"
        " end as status,"
        " case"
        " when is_started = 0 then null"
        f" when current_checksum = {checksum} then {key}"
        f" when {is_older} then null"
        " else copied_key"
        " end as duplicate_of"
        " from ("
        "select"
        f" max(case when {current} then file_checksum end) as current_checksum,"
        f" max(case when {current} then source_modified_at end) as current_modified_at,"
        f" max(case when {current} then source_version end) as current_version,"
        " min(case when is_current and file_checksum = "
        f"{checksum} and source_key <> {key} then source_key end) as copied_key,"
        f" max(case when load_id = {values['load_id']} and status = 'started'"
        " then 1 else 0 end) as is_started"
        f" from {LEDGER_TABLE}"
        f" where source_key = {key} or file_checksum = {checksum}"
        f" or load_id = {values['load_id']}"
        ") as ledger_state"
    )


def result_of(
    file: FileVersion,
    status: Status,
    counts: RowCounts,
    error: str | None,
    duplicate_of: str | None = None,
) -> LoadResult:
    seconds = (datetime.now(UTC) - file.started_at).total_seconds()
    return LoadResult(file.load_id, file.source_key, status, counts, seconds, error, duplicate_of)


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
    duplicate_of: str | None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def note(self) -> str:
        """What a person reading the ledger needs beside the status."""
        if self.error_text:
            return self.error_text
        if self.status == Status.DUPLICATE and self.duplicate_of != self.source_key:
            return f"same bytes as {self.duplicate_of}"
        if self.status == Status.STALE:
            return "older than the current version: nothing replaced"
        if self.status == Status.STARTED and self.finished_at is None:
            return "not finished: still running, or the attempt died"
        return ""


def _ledger_columns(connection: psycopg.Connection[tuple[Any, ...]]) -> str | None:
    """The select list of a `LedgerRow`, or None before anything was loaded.

    A ledger that an older loader created and no load has migrated yet lacks the newer
    columns: they read as null until the next load adds them.
    """
    found = connection.execute(
        "select column_name from information_schema.columns"
        " where table_schema = 'raw' and table_name = 'loaded_files'"
    ).fetchall()
    present = {str(name) for (name,) in found}
    if not present:
        return None
    return ", ".join(
        name if name in present else f"null as {name}"
        for name in (column.name for column in fields(LedgerRow))
    )


def _database_url(settings: Settings) -> str:
    if settings.warehouse != "postgres":
        raise ConfigurationError("the ledger can be listed from a PostgreSQL warehouse only")
    if not settings.database_url:
        raise ConfigurationError("no database: run `cafe up` or set CAFE_DATABASE_URL")
    return settings.database_url


def recent_loads(settings: Settings, limit: int = 20) -> list[LedgerRow]:
    """The latest `limit` ledger rows, newest first (empty before anything was loaded)."""
    with psycopg.connect(_database_url(settings)) as connection:
        columns = _ledger_columns(connection)
        if columns is None:
            return []
        with connection.cursor(row_factory=class_row(LedgerRow)) as cursor:
            cursor.execute(
                f"select {columns} from raw.loaded_files"
                " order by started_at desc, finished_at desc nulls first limit %s",
                (limit,),
            )
            return cursor.fetchall()


def latest_loads_of(settings: Settings, source_keys: Sequence[str]) -> dict[str, LedgerRow]:
    """The most recent ledger row of each key that has one."""
    with psycopg.connect(_database_url(settings)) as connection:
        columns = _ledger_columns(connection)
        if columns is None:
            return {}
        with connection.cursor(row_factory=class_row(LedgerRow)) as cursor:
            cursor.execute(
                f"select distinct on (source_key) {columns} from raw.loaded_files"
                " where source_key = any(%s) order by source_key, started_at desc",
                (list(source_keys),),
            )
            return {row.source_key: row for row in cursor.fetchall()}
