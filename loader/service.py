"""Load one file: the single code path behind `cafe load`, `cafe ingest` and the Lambda.

    bytes ──inspect_file──► checksum, encoding, header
          ──read_lines────► parsed / malformed lines (pyarrow, streamed in blocks)
          ──clean_batches─► validated rows with card numbers hashed, refusals masked
          ──Warehouse.load─► one transaction: ledger decision, rows, refusals, ledger row

A warehouse receives the batches as a factory, so a duplicate is skipped without parsing,
and it consumes them one at a time: parsing, validation and writing interleave and memory
holds one block. Failures end as a ledger row of their own (`failed`, or `refused` for a
file that is not readable text) and a `LoadResult` — this function does not raise for a
bad file, only for a bad configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from loader.errors import CafeError, ConfigurationError
from loader.hashing import CardHasher, CardKey
from loader.ledger import FileVersion, LoadResult, RowCounts, Status, result_of
from loader.reading import FileFacts, UnreadableFile, inspect_file, read_blocks
from loader.settings import Settings
from loader.validation import RejectedRow, reject_malformed, sanitise_text, validate_block

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4096

TRANSACTIONS_SCHEMA: Final = pa.schema(
    [
        pa.field("source_key", pa.string(), nullable=False),
        pa.field("line_number", pa.int32(), nullable=False),
        pa.field("file_checksum", pa.string(), nullable=False),
        pa.field("transaction_date", pa.string(), nullable=False),
        pa.field("branch_name", pa.string(), nullable=False),
        pa.field("customer_name", pa.string()),
        pa.field("basket", pa.string(), nullable=False),
        pa.field("total_amount", pa.decimal128(12, 2), nullable=False),
        pa.field("payment_type", pa.string(), nullable=False),
        pa.field("card_hash", pa.string()),
        pa.field("card_key_version", pa.string()),
    ]
)


@dataclass(frozen=True, slots=True)
class CleanBatch:
    """One block of a file, ready to write: `rows` has TRANSACTIONS_SCHEMA (no clear card)."""

    rows: pa.Table
    rejected: list[RejectedRow]

    @property
    def counts(self) -> RowCounts:
        loaded, rejected = self.rows.num_rows, len(self.rejected)
        return RowCounts(loaded + rejected, loaded, rejected)


BatchFactory = Callable[[], Iterator[CleanBatch]]


class Warehouse(Protocol):
    def load(self, file: FileVersion, batches: BatchFactory) -> LoadResult:
        """Load the file version exactly once, or skip it as a duplicate."""

    def record_attempt(self, file: FileVersion, status: Status, error_text: str) -> LoadResult:
        """Record a failed or refused attempt in a transaction of its own."""


def clean_batches(
    stream: IO[bytes],
    facts: FileFacts,
    file: FileVersion,
    key: CardKey,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[CleanBatch]:
    """The file's lines validated, card numbers hashed (each distinct card once per file)."""
    hasher = CardHasher(key)
    for block in read_blocks(stream, facts, on_progress=on_progress):
        checked = validate_block(block.rows)
        rejected = [
            reject_malformed(line.line_number, line.text, line.field_count)
            for line in block.malformed
        ]
        rejected.extend(checked.rejected)
        yield CleanBatch(transactions_table(checked.accepted, file, hasher), rejected)


def transactions_table(accepted: pa.Table, file: FileVersion, hasher: CardHasher) -> pa.Table:
    """Accepted rows as raw.transactions rows: file identity added, card digits hashed."""
    count = accepted.num_rows
    digits = accepted.column("card_digits").combine_chunks()
    distinct = pc.unique(digits.drop_null())
    hashes = pa.array([hasher(value) for value in distinct.to_pylist()], pa.string())
    card_hash = pc.take(hashes, pc.index_in(digits, value_set=distinct))
    version = pc.if_else(pc.is_valid(card_hash), hasher.key.version, None)
    return pa.table(
        {
            "source_key": pa.array([file.source_key] * count, pa.string()),
            "line_number": accepted.column("line_number"),
            "file_checksum": pa.array([file.checksum] * count, pa.string()),
            "transaction_date": accepted.column("transaction_date"),
            "branch_name": accepted.column("branch_name"),
            "customer_name": accepted.column("customer_name"),
            "basket": accepted.column("basket"),
            "total_amount": accepted.column("total_amount"),
            "payment_type": accepted.column("payment_type"),
            "card_hash": card_hash,
            "card_key_version": version,
        },
        schema=TRANSACTIONS_SCHEMA,
    )


def error_text_of(error: BaseException) -> str:
    """An error as the ledger stores it: one line, no card numbers, bounded."""
    text = f"{type(error).__name__}: {error}" if not isinstance(error, CafeError) else str(error)
    return sanitise_text(" ".join(text.split()))[:MAX_ERROR_CHARS]


def load_file(
    stream: IO[bytes],
    source_key: str,
    *,
    warehouse: Warehouse,
    key: CardKey,
    on_progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Load one file (a seekable binary stream) under `source_key`; never raises for its content."""
    facts = inspect_file(stream)
    file = FileVersion(source_key=source_key, checksum=facts.checksum, size_bytes=facts.size_bytes)
    if facts.refusal is not None:
        return warehouse.record_attempt(file, Status.REFUSED, facts.refusal)
    try:
        return warehouse.load(
            file, lambda: clean_batches(stream, facts, file, key, on_progress=on_progress)
        )
    except UnreadableFile as refusal:
        return warehouse.record_attempt(file, Status.REFUSED, error_text_of(refusal))
    except ConfigurationError:
        raise
    except Exception as error:  # anything else: record it, let the caller retry the file
        log.warning("load of %s failed: %s", source_key, error_text_of(error))
        return _record_failure(warehouse, file, error_text_of(error))


def _record_failure(warehouse: Warehouse, file: FileVersion, error_text: str) -> LoadResult:
    try:
        return warehouse.record_attempt(file, Status.FAILED, error_text)
    except Exception as error:  # the warehouse is unreachable: report the failure anyway
        log.warning("could not record the failure of %s: %s", file.source_key, error_text_of(error))
        return result_of(file, Status.FAILED, RowCounts(), error_text)


def load_path(
    path: Path,
    source_key: str,
    *,
    warehouse: Warehouse,
    key: CardKey,
    on_progress: Callable[[int], None] | None = None,
) -> LoadResult:
    with path.open("rb") as stream:
        return load_file(stream, source_key, warehouse=warehouse, key=key, on_progress=on_progress)


def open_warehouse(settings: Settings) -> Warehouse:
    """The writer for the configured warehouse (`CAFE_WAREHOUSE`)."""
    if settings.warehouse == "postgres":
        from loader.writers.postgres import PostgresWarehouse

        if not settings.database_url:
            raise ConfigurationError("no database: run `cafe up` or set CAFE_DATABASE_URL")
        return PostgresWarehouse(settings.database_url)
    if settings.warehouse == "redshift":
        from loader.writers.redshift import RedshiftWarehouse

        return RedshiftWarehouse.from_settings(settings)
    raise ConfigurationError(
        f"CAFE_WAREHOUSE must be postgres or redshift, not {settings.warehouse!r}"
    )
