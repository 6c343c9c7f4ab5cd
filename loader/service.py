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
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc

from loader.batches import TRANSACTIONS_SCHEMA, CleanBatch, Warehouse
from loader.errors import CafeError, ConfigurationError
from loader.hashing import CardHasher, CardKey
from loader.ledger import FileVersion, LoadResult, RowCounts, Status, result_of
from loader.reading import FileFacts, UnreadableFile, inspect_file, read_blocks
from loader.validation import reject_malformed, sanitise_text, validate_block

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4096


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
