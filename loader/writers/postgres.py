"""PostgreSQL writer: one transaction per file version, serialised per file key.

Inside the transaction, after `pg_advisory_xact_lock` on a 64-bit hash of the key (so two
workers given the same key take turns while different keys load in parallel), the ledger
decides: a duplicate only adds a `duplicate` ledger row; a replacement deletes the key's
rows and refusals and retires the current ledger row; then the rows stream in through
`COPY ... FROM STDIN` (each block as CSV that pyarrow writes in C++), the refusals follow,
and the ledger row commits with them. A crash at any point rolls everything back and
leaves the lock free.

Parsing and COPY overlap without a producer thread of our own: blocks are parsed and
validated in this thread (mostly inside pyarrow's C++ kernels) and handed to psycopg's
`QueuedLibpqWriter`, whose worker thread sends them while the next block is parsed, and
the server ingests them in its own process meanwhile. COPY accepts one table at a time, so
the refusals of a file are spooled (to disk past a few MiB) and copied after the rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
from collections.abc import Iterable

import psycopg
import pyarrow.csv as pacsv
from psycopg.copy import QueuedLibpqWriter

from loader.batches import BatchFactory, CleanBatch
from loader.ledger import (
    LOADER_VERSION,
    Decision,
    FileVersion,
    LoadResult,
    RowCounts,
    Status,
    decide,
    ledger_values,
    result_of,
)
from loader.schema import LEDGER_COLUMNS, REJECTED_COLUMNS, TRANSACTION_COLUMNS, ensure_schema
from loader.validation import RejectedRow

_COPY_TRANSACTIONS = (
    f"copy raw.transactions ({', '.join(TRANSACTION_COLUMNS)}) from stdin with (format csv)"
)
# pyarrow quotes every string and leaves nulls unquoted and empty: exactly what COPY's CSV
# format reads back as '' and NULL.
_CSV_OPTIONS = pacsv.WriteOptions(include_header=False)
_COPY_REJECTED = (
    f"copy raw.rejected_rows ({', '.join(REJECTED_COLUMNS)}) from stdin with (format csv)"
)
# finished_at is the server's clock at the insert, just before commit.
_LEDGER_VALUES = ["clock_timestamp()" if c == "finished_at" else "%s" for c in LEDGER_COLUMNS]
_INSERT_LEDGER = (
    f"insert into raw.loaded_files ({', '.join(LEDGER_COLUMNS)})"
    f" values ({', '.join(_LEDGER_VALUES)})"
)
_SPOOL_BYTES = 4 << 20


def lock_id(source_key: str) -> int:
    """A signed 64-bit advisory lock id for a file key (hashtext's 32 bits collide sooner)."""
    return int.from_bytes(hashlib.sha256(source_key.encode()).digest()[:8], "big", signed=True)


class PostgresWarehouse:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.database_url, autocommit=True, application_name="cafe-loader")

    def load(self, file: FileVersion, batches: BatchFactory) -> LoadResult:
        with self._connect() as connection:
            ensure_schema(connection)
            with connection.transaction():
                connection.execute("select pg_advisory_xact_lock(%s)", (lock_id(file.source_key),))
                current = connection.execute(
                    "select file_checksum from raw.loaded_files"
                    " where source_key = %s and is_current",
                    (file.source_key,),
                ).fetchone()
                decision = decide(str(current[0]) if current else None, file.checksum)
                if decision is Decision.SKIP:
                    self._insert_ledger(
                        connection, file, Status.DUPLICATE, False, RowCounts(), None
                    )
                    return result_of(file, Status.DUPLICATE, RowCounts(), None)
                if decision is Decision.REPLACE:
                    self._retire(connection, file.source_key)
                counts = self._copy(connection, file, batches())
                status = decision.value
                self._insert_ledger(connection, file, status, True, counts, None)
        return result_of(file, status, counts, None)

    def record_attempt(self, file: FileVersion, status: Status, error_text: str) -> LoadResult:
        with self._connect() as connection:
            ensure_schema(connection)
            self._insert_ledger(connection, file, status, False, RowCounts(), error_text)
        return result_of(file, status, RowCounts(), error_text)

    @staticmethod
    def _retire(connection: psycopg.Connection[tuple[object, ...]], source_key: str) -> None:
        for table in ("raw.transactions", "raw.rejected_rows"):
            connection.execute(f"delete from {table} where source_key = %s", (source_key,))
        connection.execute(
            "update raw.loaded_files set is_current = false where source_key = %s and is_current",
            (source_key,),
        )

    @staticmethod
    def _copy(
        connection: psycopg.Connection[tuple[object, ...]],
        file: FileVersion,
        batches: Iterable[CleanBatch],
    ) -> RowCounts:
        counts = RowCounts()
        with tempfile.SpooledTemporaryFile(_SPOOL_BYTES, mode="w+", newline="") as spool:
            refusals = csv.writer(spool)
            with connection.cursor() as cursor:
                # The queued writer sends from a worker thread (the socket I/O releases
                # the GIL), so the server ingests block N while this thread parses N+1.
                writer = QueuedLibpqWriter(cursor)
                with cursor.copy(_COPY_TRANSACTIONS, writer=writer) as copy:
                    for batch in batches:
                        if batch.rows.num_rows:
                            buffer = io.BytesIO()
                            pacsv.write_csv(batch.rows, buffer, write_options=_CSV_OPTIONS)
                            copy.write(buffer.getbuffer())
                        refusals.writerows(
                            (file.source_key, file.checksum, *_rejected_fields(rejected))
                            for rejected in batch.rejected
                        )
                        counts += batch.counts
                if counts.rejected:
                    spool.seek(0)
                    with cursor.copy(_COPY_REJECTED) as copy:
                        while chunk := spool.read(1 << 16):
                            copy.write(chunk)
        return counts

    @staticmethod
    def _insert_ledger(
        connection: psycopg.Connection[tuple[object, ...]],
        file: FileVersion,
        status: Status,
        is_current: bool,
        counts: RowCounts,
        error_text: str | None,
    ) -> None:
        connection.execute(
            _INSERT_LEDGER,
            (*ledger_values(file, status, is_current, counts), error_text, LOADER_VERSION),
        )


def _rejected_fields(row: RejectedRow) -> tuple[int, str, str]:
    return (row.line_number, row.reason, row.raw_line)
