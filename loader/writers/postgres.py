"""PostgreSQL writer: a committed `started` row, then one transaction per file version.

    started row (own commit) ─► transaction: key lock, checksum lock, decision,
                                [retire the key's current version], COPY rows, COPY refusals,
                                started row closed with the outcome ─► commit

The `started` row is committed first so that an attempt that dies leaves a trace; the
outcome closes that same row inside the transaction that writes the rows, so the ledger
never says `loaded` without the rows nor holds rows without saying so. A crash at any
point after the `started` row rolls everything else back and leaves the locks free.

Two transaction-scoped advisory locks serialise what must not interleave: one on a 64-bit
hash of the key (two workers given the same key take turns, different keys load in
parallel) and one on the checksum (two keys with the same bytes take turns, so that the
second sees the first as current and is recorded as its copy). Both are taken in that
order by every load, so they cannot deadlock. Under them the ledger's shared rule
(`loader.ledger.decision_query`) decides: a duplicate or a stale version only closes its
row; a replacement deletes the key's rows and refusals and retires the current ledger row;
then the rows stream in through `COPY ... FROM STDIN` (each block as CSV that pyarrow
writes in C++), and the refusals follow.

Parsing and COPY overlap: blocks are parsed, validated and hashed in this thread (mostly
inside pyarrow's C++ kernels) and handed to a sending thread (`_QueuedWriter`, psycopg's
`LibpqWriter` behind a queue of a few blocks), which sends block N while block N+1 is
parsed; the server ingests them in its own process meanwhile. When the server is the
slower side (it is, here: a COPY into raw.transactions costs it about three times a COPY
of the same file into a text table), parsing waits for it rather than queueing the file in
memory. COPY accepts one table at a time, so
the refusals of a file are spooled (to disk past a few MiB) and copied after the rows.

With a deadline (a Lambda invocation), the transaction's `statement_timeout` ends a COPY
that would outlive it: the server cancels the statement and the transaction rolls back.

The first load with a card key version records the key's fingerprint in `raw.card_keys`;
every later load compares its own and refuses (`CardKeyMismatch`) when they differ, or
(`CardKeySuperseded`) when a rotation moved away from the version it holds as current.
During a rotation's overlap window the same transaction records the links between the two
keys' hashes of each card (`raw.card_links`), and each refused line keeps the hash of the
card it holds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import queue
import tempfile
import threading
from collections.abc import Iterable

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql
from psycopg.copy import LibpqWriter

from loader.batches import NO_DEADLINE, BatchFactory, CleanBatch, Deadline
from loader.hashing import KeyRecord, check_key_record
from loader.ledger import (
    FileVersion,
    LoadResult,
    RowCounts,
    Status,
    decision_query,
    ledger_row,
    result_of,
)
from loader.pseudonyms import card_hash_of, links_of
from loader.schema import (
    CARD_LINK_COLUMNS,
    LEDGER_COLUMNS,
    REJECTED_COLUMNS,
    TRANSACTION_COLUMNS,
    ensure_schema,
)
from loader.validation import RejectedRow

Connection = psycopg.Connection[tuple[object, ...]]

_COPY_TRANSACTIONS = (
    f"copy raw.transactions ({', '.join(TRANSACTION_COLUMNS)}) from stdin with (format csv)"
)
# pyarrow quotes every string and leaves nulls unquoted and empty: exactly what COPY's CSV
# format reads back as '' and NULL.
_CSV_OPTIONS = pacsv.WriteOptions(include_header=False)
_COPY_REJECTED = (
    f"copy raw.rejected_rows ({', '.join(REJECTED_COLUMNS)}) from stdin with (format csv)"
)
_VALUED_COLUMNS = tuple(column for column in LEDGER_COLUMNS if column != "finished_at")
_INSERT_STARTED = (
    f"insert into raw.loaded_files ({', '.join(_VALUED_COLUMNS)})"
    f" values ({', '.join(f'%({column})s' for column in _VALUED_COLUMNS)})"
)
# finished_at is the server's clock when the outcome is written, just before commit.
_RECORD_ATTEMPT = (
    f"insert into raw.loaded_files ({', '.join(_VALUED_COLUMNS)}, finished_at)"
    f" values ({', '.join(f'%({column})s' for column in _VALUED_COLUMNS)}, clock_timestamp())"
    " on conflict (load_id) do update set status = excluded.status,"
    " error_text = excluded.error_text, finished_at = excluded.finished_at"
)
_CLOSE = (
    "update raw.loaded_files set status = %(status)s, is_current = %(is_current)s,"
    " rows_read = %(rows_read)s, rows_loaded = %(rows_loaded)s,"
    " rows_rejected = %(rows_rejected)s, duplicate_of = %(duplicate_of)s,"
    " finished_at = clock_timestamp()"
    " where load_id = %(load_id)s and status = 'started'"
)
_DECIDE = decision_query(
    {
        name: f"%({name})s"
        for name in ("load_id", "source_key", "checksum", "sequencer", "modified_at")
    }
)
_SPOOL_BYTES = 4 << 20
# A card seen again in another file of the overlap window has its link already.
_INSERT_LINK = (
    f"insert into raw.card_links ({', '.join(CARD_LINK_COLUMNS)})"
    f" values ({', '.join(f'%({column})s' for column in CARD_LINK_COLUMNS[:-1])}, now())"
    " on conflict (card_hash, previous_card_hash) do nothing"
)


def lock_id(source_key: str) -> int:
    """A signed 64-bit advisory lock id for a file key (hashtext's 32 bits collide sooner)."""
    return _lock_id(source_key.encode())


def checksum_lock_id(checksum: str) -> int:
    """The advisory lock id of a file's content (its own namespace, apart from keys')."""
    return _lock_id(b"checksum:" + checksum.encode())


def _lock_id(text: bytes) -> int:
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big", signed=True)


class PostgresWarehouse:
    def __init__(self, database_url: str, *, deadline: Deadline = NO_DEADLINE) -> None:
        self.database_url = database_url
        self.deadline = deadline
        self._verified_keys: set[tuple[str, str, bool]] = set()

    def _connect(self) -> Connection:
        return psycopg.connect(self.database_url, autocommit=True, application_name="cafe-loader")

    def load(self, file: FileVersion, batches: BatchFactory) -> LoadResult:
        with self._connect() as connection:
            ensure_schema(connection)
            self._verify_card_key(connection, file)
            connection.execute(_INSERT_STARTED, ledger_row(file, Status.STARTED))
            with connection.transaction():
                self._limit_to_deadline(connection)
                connection.execute("select pg_advisory_xact_lock(%s)", (lock_id(file.source_key),))
                connection.execute(
                    "select pg_advisory_xact_lock(%s)", (checksum_lock_id(file.checksum),)
                )
                decided = connection.execute(_DECIDE, _decision_values(file)).fetchone()
                assert decided is not None  # an aggregate always returns its one row
                status = Status(str(decided[0]))
                duplicate_of = None if decided[1] is None else str(decided[1])
                counts = RowCounts()
                if status is Status.REPLACED:
                    self._retire(connection, file.source_key)
                if status.holds_rows:
                    counts = self._copy(connection, file, batches())
                elif status is Status.FAILED:
                    raise RuntimeError("the load's started ledger row disappeared")
                self._close(connection, file, status, counts, duplicate_of)
        return result_of(file, status, counts, None, duplicate_of)

    def record_attempt(self, file: FileVersion, status: Status, error_text: str) -> LoadResult:
        with self._connect() as connection:
            ensure_schema(connection)
            connection.execute(_RECORD_ATTEMPT, ledger_row(file, status, error_text=error_text))
        return result_of(file, status, RowCounts(), error_text)

    def _verify_card_key(self, connection: Connection, file: FileVersion) -> None:
        """The file's key (and its linking key) as `raw.card_keys` records them, or refuse.

        A version's first use records its fingerprint; every later use compares its own.
        """
        for version, fingerprint, current in (
            (file.card_key_version, file.card_key_fingerprint, True),
            (file.link_key_version, file.link_key_fingerprint, False),
        ):
            if version is None or fingerprint is None:
                continue
            if (version, fingerprint, current) in self._verified_keys:
                continue
            connection.execute(
                "insert into raw.card_keys (key_version, fingerprint, recorded_at)"
                " values (%s, %s, now()) on conflict (key_version) do nothing",
                (version, fingerprint),
            )
            recorded = connection.execute(
                "select fingerprint, recorded_at, overlap_ends_at, retired_at"
                " from raw.card_keys where key_version = %s",
                (version,),
            ).fetchone()
            record = KeyRecord(str(recorded[0]), *recorded[1:]) if recorded else None
            check_key_record(version, fingerprint, record, current=current)
            self._verified_keys.add((version, fingerprint, current))

    def _limit_to_deadline(self, connection: Connection) -> None:
        remaining = self.deadline.remaining_for_work()
        if remaining is None:
            return
        milliseconds = max(int(remaining * 1000), 1)
        connection.execute(
            sql.SQL("set local statement_timeout = {}").format(sql.Literal(milliseconds))
        )

    @staticmethod
    def _retire(connection: Connection, source_key: str) -> None:
        for table in ("raw.transactions", "raw.rejected_rows"):
            connection.execute(f"delete from {table} where source_key = %s", (source_key,))
        connection.execute(
            "update raw.loaded_files set is_current = false where source_key = %s and is_current",
            (source_key,),
        )

    @staticmethod
    def _close(
        connection: Connection,
        file: FileVersion,
        status: Status,
        counts: RowCounts,
        duplicate_of: str | None,
    ) -> None:
        closed = connection.execute(
            _CLOSE,
            {
                "status": status.value,
                "is_current": status.holds_rows,
                "rows_read": counts.read,
                "rows_loaded": counts.loaded,
                "rows_rejected": counts.rejected,
                "duplicate_of": duplicate_of,
                "load_id": file.load_id,
            },
        )
        if closed.rowcount != 1:  # rows must never commit without the row that counts them
            raise RuntimeError("the load's started ledger row disappeared")

    @staticmethod
    def _copy(
        connection: Connection, file: FileVersion, batches: Iterable[CleanBatch]
    ) -> RowCounts:
        counts = RowCounts()
        links: list[pa.Table] = []
        with tempfile.SpooledTemporaryFile(_SPOOL_BYTES, mode="w+", newline="") as spool:
            refusals = csv.writer(spool)
            with connection.cursor() as cursor:
                # The queued writer sends from a worker thread (the socket I/O releases
                # the GIL), so the server ingests block N while this thread parses N+1.
                writer = _QueuedWriter(cursor)
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
                        if links_of(batch).num_rows:
                            links.append(links_of(batch))
                if counts.rejected:
                    spool.seek(0)
                    with cursor.copy(_COPY_REJECTED) as copy:
                        while chunk := spool.read(1 << 16):
                            copy.write(chunk)
                if links:
                    # A few rows per distinct card: plain inserts, pipelined by psycopg.
                    cursor.executemany(_INSERT_LINK, pa.concat_tables(links).to_pylist())
        return counts


class _QueuedWriter(LibpqWriter):
    """psycopg's COPY writer, sending from a thread of its own (as `QueuedLibpqWriter`
    does) so that the server ingests block N while this thread parses block N+1; but at
    most `QUEUED_BLOCKS` blocks wait, so that a file parsed faster than the server ingests
    it waits for the server instead of piling up in memory (psycopg's own queue holds up
    to 128 MiB)."""

    QUEUED_BLOCKS = 4

    def __init__(self, cursor: psycopg.Cursor[tuple[object, ...]]) -> None:
        super().__init__(cursor)
        self._queue: queue.Queue[memoryview | bytes | None] = queue.Queue(self.QUEUED_BLOCKS)
        self._sender: threading.Thread | None = None
        self._error: BaseException | None = None

    def _send(self) -> None:
        try:
            while (data := self._queue.get()) is not None:
                super().write(data)
        except BaseException as error:  # handed to the parsing thread by write or finish
            self._error = error
            while self._queue.get() is not None:  # let write() return until finish()
                pass

    def write(self, data: memoryview | bytes) -> None:  # type: ignore[override]
        if self._sender is None:
            self._sender = threading.Thread(target=self._send, name="cafe-copy", daemon=True)
            self._sender.start()
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def finish(self, exc: BaseException | None = None) -> None:
        if self._sender is not None:
            self._queue.put(None)
            self._sender.join()
            self._sender = None
        if self._error is not None:
            raise self._error
        super().finish(exc)


def _decision_values(file: FileVersion) -> dict[str, object]:
    return {
        "load_id": file.load_id,
        "source_key": file.source_key,
        "checksum": file.checksum,
        "sequencer": file.source.sequencer.upper() if file.source.sequencer else None,
        "modified_at": file.source.modified_at,
    }


def _rejected_fields(row: RejectedRow) -> tuple[int, str, str, str | None, str | None]:
    return (row.line_number, row.reason, row.raw_line, *card_hash_of(row))
