"""What a warehouse writer receives: clean batches of one file, a deadline, and the
`Warehouse` protocol.

The service produces batches (`loader.service.clean_batches`), the writers consume them
(`loader.writers`); both depend on this module and not on each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Deadline:
    """When the caller needs its answer: a Lambda invocation's end; none for the CLI.

    Work (a COPY, a wait on Redshift) must stop `reserve_seconds` before `ends_at`, so that
    the failure can still be recorded and the invocation answer before Lambda kills it.
    Times are `clock()` values (monotonic seconds).
    """

    ends_at: float | None = None
    reserve_seconds: float = 0.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    @classmethod
    def after(
        cls,
        seconds: float,
        *,
        reserve_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> Deadline:
        return cls(clock() + seconds, reserve_seconds, clock)

    @classmethod
    def counting_down(
        cls, remaining_seconds: Callable[[], float], *, reserve_seconds: float = 0.0
    ) -> Deadline:
        """A deadline read from a count-down, such as a Lambda context's remaining time."""
        return cls(0.0, reserve_seconds, lambda: -remaining_seconds())

    def remaining(self) -> float | None:
        """Seconds until the answer is due (None: no deadline)."""
        return None if self.ends_at is None else self.ends_at - self.clock()

    def remaining_for_work(self) -> float | None:
        """Seconds left for work, the reserve for answering kept back (None: no deadline)."""
        remaining = self.remaining()
        return None if remaining is None else remaining - self.reserve_seconds


NO_DEADLINE: Final = Deadline()


class Warehouse(Protocol):
    def load(self, file: FileVersion, batches: BatchFactory) -> LoadResult:
        """Load the file version exactly once, or record why not (duplicate, stale).

        Commits a `started` ledger row first and closes it with the outcome together with
        the rows; refuses (`CardKeyMismatch`) when the file's card key is not the one the
        warehouse recorded for its version.
        """

    def record_attempt(self, file: FileVersion, status: Status, error_text: str) -> LoadResult:
        """Record a failed or refused attempt (closing its `started` row, if any)."""
