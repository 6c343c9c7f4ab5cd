"""What a warehouse writer receives: clean batches of one file, and the `Warehouse` protocol.

The service produces batches (`loader.service.clean_batches`), the writers consume them
(`loader.writers`); both depend on this module and not on each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Protocol

import pyarrow as pa

from loader.ledger import FileVersion, LoadResult, RowCounts, Status
from loader.validation import RejectedRow

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
