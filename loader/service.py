"""Load one file: the single code path behind `cafe load`, `cafe ingest` and the Lambda.

    bytes ──inspect_file──► checksum, encoding, header
          ──refusals──────► by name (not .csv, a card number in it) or by content
          ──Warehouse.load─► `started` row; then one transaction: ledger decision, rows,
                             refusals, the row closed with the outcome
          ──clean_batches─► (inside the load) validated rows, card numbers hashed

A warehouse receives the batches as a factory, so a duplicate is skipped without parsing,
and it consumes them one at a time: parsing, validation and writing interleave and memory
holds one block. Failures end as a ledger row of their own (`failed`, or `refused` for a
file refused whole) and a `LoadResult` — this function does not raise for a bad file, only
for a bad configuration (which includes a card key the warehouse does not recognise).

The key a file arrives under is stored, logged and returned only masked: a card number
typed into a file name must not travel further than the landing bucket.

The privacy lifecycle's share (docs/privacy.md): a refused line keeps the keyed hash of the
card it holds (`loader.pseudonyms.HashedRejection`), so an erasure or an access request
finds it although its text is masked; during a key rotation's overlap window (`link_key`)
each card is hashed with the previous key too and the two hashes travel to the writer as
links (`loader.pseudonyms.LinkedBatch`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc

from loader.batches import TRANSACTIONS_SCHEMA, CleanBatch, Warehouse
from loader.cards import find_card_numbers, mask_card_numbers
from loader.contract import COLUMNS, LineRules, normalise_card_number
from loader.errors import CafeError, CardKeyMismatch, ConfigurationError
from loader.filenames import refusal_of_name
from loader.hashing import CardHasher, CardKey, key_fingerprint
from loader.ledger import (
    UNKNOWN_SOURCE,
    FileVersion,
    LoadResult,
    RowCounts,
    SourceFacts,
    Status,
    result_of,
)
from loader.pseudonyms import CARD_LINKS_SCHEMA, HashedRejection, LinkedBatch
from loader.reading import FileFacts, UnreadableFile, inspect_file, read_blocks
from loader.validation import RejectedRow, reject_malformed, validate_block

log = logging.getLogger(__name__)

# raw.loaded_files.error_text, .file_header, .unknown_columns: varchar(4096), which counts
# bytes on Redshift.
MAX_LEDGER_TEXT_BYTES = 4096
_CARD_COLUMN = COLUMNS.index("card_number")


def clean_batches(
    stream: IO[bytes],
    facts: FileFacts,
    file: FileVersion,
    key: CardKey,
    *,
    link_key: CardKey | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[CleanBatch]:
    """The file's lines validated, card numbers hashed (each distinct card once: see
    `CardHasher`).

    One set of line rules (one clock) applies to the whole file; a bad contract setting
    fails here, before any block is read. A refused line keeps the hash of the card it
    holds. With `link_key` (a rotation's overlap window) each card first seen in the file
    is also hashed with the previous key, and the two hashes are linked.
    """
    rules = LineRules.for_load()
    hasher = CardHasher(key)
    linker = _Linker(hasher, CardHasher(link_key)) if link_key is not None else None
    for block in read_blocks(stream, facts, on_progress=on_progress):
        checked = validate_block(block.rows, rules)
        rejected: list[RejectedRow] = [
            _hashed(
                reject_malformed(
                    line.line_number, line.text, line.field_count, line.expected_fields
                ),
                _card_in_text(line.text),
                hasher,
            )
            for line in block.malformed
        ]
        rejected.extend(_with_card_hashes(checked.rejected, block.rows, hasher))
        rows = transactions_table(checked.accepted, file, hasher)
        if linker is None:
            yield CleanBatch(rows, rejected)
        else:
            yield LinkedBatch(rows, rejected, linker.links(checked.accepted))


class _Linker:
    """The links between two keys' hashes of each card, each card once per file."""

    def __init__(self, current: CardHasher, previous: CardHasher) -> None:
        self.current = current
        self.previous = previous
        self._seen: set[str] = set()

    def links(self, accepted: pa.Table) -> pa.Table:
        digits = pc.unique(accepted.column("card_digits").drop_null()).to_pylist()
        new = [value for value in digits if value not in self._seen]
        self._seen.update(new)
        return pa.table(
            {
                "card_hash": [self.current(value) for value in new],
                "card_key_version": [self.current.key.version] * len(new),
                "previous_card_hash": [self.previous(value) for value in new],
                "previous_key_version": [self.previous.key.version] * len(new),
            },
            schema=CARD_LINKS_SCHEMA,
        )


def _card_in_text(text: str) -> str | None:
    found = find_card_numbers(text)
    return found[0].digits if found else None


def _card_in_fields(fields: list[str]) -> str | None:
    """The card a refused line holds: its card column's digits, else the first card number
    (13-19 digits passing Luhn, in any disguise) in any field."""
    if len(fields) == len(COLUMNS):
        digits = normalise_card_number(fields[_CARD_COLUMN].strip())
        if digits is not None:
            return digits
    for value in fields:
        found = _card_in_text(value)
        if found is not None:
            return found
    return None


def _hashed(row: RejectedRow, digits: str | None, hasher: CardHasher) -> RejectedRow:
    if digits is None:
        return row
    return HashedRejection(
        row.line_number, row.reason, row.raw_line, hasher(digits), hasher.key.version
    )


def _with_card_hashes(
    rejected: list[RejectedRow], rows: pa.Table, hasher: CardHasher
) -> list[RejectedRow]:
    """Refused lines of a block, each with the hash of the card it holds (if any)."""
    if not rejected:
        return []
    numbers = pa.array([row.line_number for row in rejected], pa.int64())
    refused = rows.filter(pc.is_in(rows.column("line_number"), value_set=numbers))
    columns = [refused.column(name).to_pylist() for name in COLUMNS]
    fields_by_line = {
        int(line): [str(value or "") for value in values]
        for line, *values in zip(refused.column("line_number").to_pylist(), *columns, strict=True)
    }
    return [
        _hashed(row, _card_in_fields(fields_by_line.get(row.line_number, [])), hasher)
        for row in rejected
    ]


def transactions_table(accepted: pa.Table, file: FileVersion, hasher: CardHasher) -> pa.Table:
    """Accepted rows as raw.transactions rows: file identity added, card digits hashed."""
    count = accepted.num_rows
    card_hash = hasher.hashes(accepted.column("card_digits").combine_chunks())
    version = pc.if_else(pc.is_valid(card_hash), hasher.key.version, None)
    return pa.table(
        {
            "source_key": pa.repeat(pa.scalar(file.source_key, pa.string()), count),
            "line_number": accepted.column("line_number"),
            "file_checksum": pa.repeat(pa.scalar(file.checksum, pa.string()), count),
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
    """An error as the ledger and the logs hold it: one line, no card numbers, bounded."""
    text = f"{type(error).__name__}: {error}" if not isinstance(error, CafeError) else str(error)
    return _ledger_text(" ".join(text.split()))


def _ledger_text(text: str) -> str:
    """Text as a ledger column holds it: card numbers masked, NULs spelt out, bounded."""
    masked = mask_card_numbers(text).replace("\x00", "\\x00")
    return masked.encode()[:MAX_LEDGER_TEXT_BYTES].decode(errors="ignore")


def file_version(
    source_key: str,
    facts: FileFacts,
    source: SourceFacts,
    key: CardKey,
    link_key: CardKey | None = None,
) -> FileVersion:
    """The ledger's view of a file version: masked key, file facts, key fingerprints."""
    return FileVersion(
        source_key=stored_key(source_key),
        checksum=facts.checksum,
        size_bytes=facts.size_bytes,
        source=source,
        encoding=facts.encoding,
        header=_names(facts.header),
        unknown_columns=_names(facts.unknown_columns),
        card_key_version=key.version,
        card_key_fingerprint=key_fingerprint(key),
        link_key_version=link_key.version if link_key else None,
        link_key_fingerprint=key_fingerprint(link_key) if link_key else None,
    )


def stored_key(source_key: str) -> str:
    """A key (or any text about one) as the ledger, the logs and the metrics may hold it.

    A key whose masked form differs from it is refused (`refusal_of_name`), so masking
    never merges the keys of two files that load.
    """
    return mask_card_numbers(source_key)


def _names(names: tuple[str, ...] | None) -> str | None:
    """Column names as the ledger keeps them: comma-separated, bounded; None for none."""
    return _ledger_text(",".join(names)) if names else None


def load_file(
    stream: IO[bytes],
    source_key: str,
    *,
    warehouse: Warehouse,
    key: CardKey,
    link_key: CardKey | None = None,
    source: SourceFacts = UNKNOWN_SOURCE,
    on_progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Load one file (a seekable binary stream) under `source_key`; never raises for its content.

    `link_key`: the previous card key during a rotation's overlap window
    (`CardKeys.linking_key`); each card is hashed with it too and the two hashes linked.
    """
    facts = inspect_file(stream)
    file = file_version(source_key, facts, source, key, link_key)
    whole_file_refusal = refusal_of_name(source_key) or facts.refusal
    if whole_file_refusal is not None:
        return warehouse.record_attempt(file, Status.REFUSED, _ledger_text(whole_file_refusal))
    try:
        return warehouse.load(
            file,
            lambda: clean_batches(
                stream, facts, file, key, link_key=link_key, on_progress=on_progress
            ),
        )
    except UnreadableFile as unreadable:
        return warehouse.record_attempt(file, Status.REFUSED, error_text_of(unreadable))
    except CardKeyMismatch as mismatch:
        # Retrying cannot help until someone restores the key; the ledger says why meanwhile.
        _record_failure(warehouse, file, error_text_of(mismatch))
        raise
    except ConfigurationError:
        raise
    except Exception as error:  # anything else: record it, let the caller retry the file
        log.warning("load of %s failed: %s", file.source_key, error_text_of(error))
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
    link_key: CardKey | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Load a local file; its modification time orders it against the key's other versions."""
    with path.open("rb") as stream:
        modified_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        return load_file(
            stream,
            source_key,
            warehouse=warehouse,
            key=key,
            link_key=link_key,
            source=SourceFacts(modified_at=modified_at),
            on_progress=on_progress,
        )
