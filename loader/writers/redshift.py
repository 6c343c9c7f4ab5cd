"""Redshift writer: Parquet staged in S3, then one Data API batch that decides and loads.

    card key   ─► batch: lock raw.card_keys; record the fingerprint if the version is new
                  query: the fingerprint(s) recorded for the version ─► refuse a mismatch
    started    ─► insert the `started` ledger row (committed on its own)
    pre-check  ─► the ledger's decision, read without a lock: stage only what may load
    staging    ─► s3://<bucket>/staged/<load_id>/transactions/part-NNNNN.parquet
                  s3://<bucket>/staged/<load_id>/rejected/part-NNNNN.parquet (Snappy)
    batch (one transaction):
        lock raw.loaded_files;
        create temp table load_decision as <the ledger's decision, now under the lock>;
        create temp table staged_* as <raw table's columns>; COPY ... FORMAT AS PARQUET;
        when the decision is loaded/replaced: delete the key's rows and refusals, retire its
            current ledger row, insert the staged rows;
        close the `started` row with the decision and the counts
    outcome    ─► read back the closed row; staged objects deleted always

Serialisation per key: Redshift has no advisory locks, and its serializable isolation
does not stop two loads of one key that both decided before either committed (the second
waits for the first, then deletes and reloads). So every load batch starts with `lock` on
the ledger (ACCESS EXCLUSIVE until commit) and decides inside the transaction, from the
ledger as the previous load left it: a second load of the same bytes records `duplicate`,
never a second `loaded`. Loads of different keys take turns too; Redshift runs writes to
one table one at a time anyway, and the batch is short next to staging.

COPY cannot be made conditional, so it loads into temporary staging tables and the rows
reach the raw tables through `insert ... select ... where <the decision loads>`. When the
pre-check found nothing to load (a duplicate or stale version) nothing is staged; should
the decision under the lock then say otherwise (another load changed the key meanwhile),
the attempt closes as `failed` and its message is retried.

The staged Parquet holds strings, integers and decimals only (Snappy-compressed, which
the COPY documentation lists): `loaded_at` and `rejected_at` are stamped by the insert
from the staging tables with `getdate() at time zone 'UTC'`, a TIMESTAMPTZ, so no
timestamp has to cross the Parquet type mapping.

Deadlines: every wait on a statement ends at the invocation's deadline (less the reserve
for answering) and cancels the statement it gives up on.

`RAW` is a reserved word in Redshift (a column encoding), so the schema is always written
`"raw"` here. `batch_execute_statement` takes no bind parameters, so values are inlined
as literals by `sql_literal`, which doubles quotes and backslashes (Redshift reads a
backslash in a literal as an escape) and refuses control characters.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from loader.aws import aws_client
from loader.batches import NO_DEADLINE, BatchFactory, CleanBatch, Deadline
from loader.errors import CafeError, ConfigurationError
from loader.hashing import KeyRecord, check_key_record
from loader.ledger import (
    LEDGER_TABLE,
    FileVersion,
    LoadResult,
    RowCounts,
    Status,
    decision_query,
    ledger_row,
    result_of,
)
from loader.pseudonyms import CARD_LINKS_SCHEMA, card_hash_of, links_of
from loader.schema import (
    CARD_LINK_COLUMNS,
    LEDGER_COLUMNS,
    REJECTED_COLUMNS,
    TRANSACTION_COLUMNS,
)
from loader.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_redshift_data import RedshiftDataAPIServiceClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

REJECTED_SCHEMA: Final = pa.schema(
    [
        pa.field("source_key", pa.string(), nullable=False),
        pa.field("file_checksum", pa.string(), nullable=False),
        pa.field("line_number", pa.int32(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw_line", pa.string()),
        pa.field("card_hash", pa.string()),
        pa.field("card_key_version", pa.string()),
    ]
)
PARQUET_COMPRESSION: Final = "snappy"
# TIMESTAMPTZ from Redshift's clock: getdate() is the session's (UTC) wall clock.
NOW: Final = "getdate() at time zone 'UTC'"
CARD_KEYS_TABLE: Final = '"raw".card_keys'
_LOADS: Final = "('loaded', 'replaced')"
_LOADABLE: Final = f"exists (select 1 from load_decision where decided_status in {_LOADS})"
_DONE: Final = "FINISHED"
_BROKEN: Final = ("FAILED", "ABORTED")
CHANGED_WHILE_DECIDING: Final = (
    "another load changed this key, or a copy of it, while this one was deciding:"
    " nothing was loaded; the file is retried"
)


class RedshiftStatementFailed(CafeError):
    """A Data API statement ended FAILED or ABORTED, or was cancelled at the deadline."""


def sql_literal(value: object) -> str:
    """`value` as a Redshift SQL literal."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return sql_literal(value.isoformat(sep=" "))
    text = str(value)
    if any(ord(character) < 32 for character in text):
        # A control character cannot stand in a literal (the Data API takes one line per
        # statement): spell it with chr() so that the value arrives unchanged.
        pieces = re.split(r"([\x00-\x1f])", text)
        return (
            "("
            + " || ".join(
                f"chr({ord(piece)})" if len(piece) == 1 and ord(piece) < 32 else sql_literal(piece)
                for piece in pieces
                if piece
            )
            + ")"
        )
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def staged_prefix(load_id: str) -> str:
    return f"staged/{load_id}/"


@dataclass(frozen=True)
class RedshiftTarget:
    workgroup: str
    database: str
    copy_role_arn: str
    bucket: str


class RedshiftWarehouse:
    def __init__(
        self,
        target: RedshiftTarget,
        *,
        data_api: RedshiftDataAPIServiceClient,
        s3: S3Client,
        poll_seconds: float = 0.5,
        timeout_seconds: float = 600,
        sleep: Callable[[float], None] = time.sleep,
        deadline: Deadline = NO_DEADLINE,
    ) -> None:
        self.target = target
        self.data_api = data_api
        self.s3 = s3
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.sleep = sleep
        self.deadline = deadline
        self._verified_keys: set[tuple[str, str, bool]] = set()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, deadline: Deadline = NO_DEADLINE
    ) -> RedshiftWarehouse:
        missing = [
            name
            for name, value in (
                ("CAFE_REDSHIFT_WORKGROUP", settings.redshift_workgroup),
                ("CAFE_REDSHIFT_DATABASE", settings.redshift_database),
                ("CAFE_REDSHIFT_COPY_ROLE_ARN", settings.redshift_copy_role_arn),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError("the Redshift writer needs " + ", ".join(missing))
        target = RedshiftTarget(
            workgroup=str(settings.redshift_workgroup),
            database=str(settings.redshift_database),
            copy_role_arn=str(settings.redshift_copy_role_arn),
            bucket=settings.landing_bucket,
        )
        return cls(
            target,
            data_api=aws_client(settings, "redshift-data"),
            s3=aws_client(settings, "s3"),
            deadline=deadline,
        )

    # -- the Warehouse protocol ------------------------------------------------------------

    def load(self, file: FileVersion, batches: BatchFactory) -> LoadResult:
        self._verify_card_key(file)
        self.execute(started_statement(file))
        [[likely]] = self.query(f"select status from ({decision_of(file)}) as decided")
        staged = Status(str(likely)).holds_rows
        prefix = staged_prefix(file.load_id)
        try:
            counts, linked = RowCounts(), False
            if staged:
                counts, linked = self._stage(file, batches(), prefix)
            self.run_transaction(self.load_statements(file, counts, staged=staged, linked=linked))
        finally:
            if staged:
                self._delete_prefix(prefix)
        return self._outcome(file)

    def record_attempt(self, file: FileVersion, status: Status, error_text: str) -> LoadResult:
        self.run_transaction(attempt_statements(file, status, error_text), answering=True)
        return result_of(file, status, RowCounts(), error_text)

    # -- SQL -------------------------------------------------------------------------------

    def load_statements(
        self, file: FileVersion, counts: RowCounts, *, staged: bool, linked: bool = False
    ) -> list[str]:
        """The statements of one load's transaction, in order."""
        key = sql_literal(file.source_key)
        location = f"s3://{self.target.bucket}/{staged_prefix(file.load_id)}"
        role = sql_literal(self.target.copy_role_arn)
        # Unstaged, a decision to load can only mean the ledger changed since the pre-check.
        decided = (
            "status" if staged else f"case when status in {_LOADS} then 'failed' else status end"
        )
        statements = [
            f"lock {LEDGER_TABLE}",
            f"create temp table load_decision as select {decided} as decided_status,"
            f" duplicate_of as decided_duplicate_of from ({decision_of(file)}) as decided",
        ]
        if staged:
            copies = [
                ("transactions", "staged_transactions", TRANSACTION_COLUMNS, counts.loaded),
                ("rejected_rows", "staged_rejections", REJECTED_COLUMNS, counts.rejected),
            ]
            parts = {"transactions": "transactions/", "rejected_rows": "rejected/"}
            stamps = {"transactions": "loaded_at", "rejected_rows": "rejected_at"}
            for table, staging, columns, count in copies:
                if count:
                    listed = ", ".join(columns)
                    statements += [
                        f'create temp table {staging} as select {listed} from "raw".{table}'
                        " limit 0",
                        f"copy {staging} from {sql_literal(location + parts[table])}"
                        f" iam_role {role} format as parquet",
                    ]
            statements += [
                f'delete from "raw".transactions where source_key = {key} and {_LOADABLE}',
                f'delete from "raw".rejected_rows where source_key = {key} and {_LOADABLE}',
                f"update {LEDGER_TABLE} set is_current = false"
                f" where source_key = {key} and is_current and {_LOADABLE}",
            ]
            for table, staging, columns, count in copies:
                if count:
                    listed = ", ".join(columns)
                    statements.append(
                        f'insert into "raw".{table} ({listed}, {stamps[table]})'
                        f" select {listed}, {NOW} from {staging} where {_LOADABLE}"
                    )
            if linked:
                statements += link_statements(location + "links/", role)
        statements.append(close_statement(file, counts))
        return statements

    def _verify_card_key(self, file: FileVersion) -> None:
        """The file's key (and its linking key) as `raw.card_keys` records them, or refuse."""
        for version, fingerprint, current in (
            (file.card_key_version, file.card_key_fingerprint, True),
            (file.link_key_version, file.link_key_fingerprint, False),
        ):
            if version is None or fingerprint is None:
                continue
            if (version, fingerprint, current) in self._verified_keys:
                continue
            # The lock makes the first use of a version record one fingerprint, not two.
            self.run_transaction(
                [
                    f"lock {CARD_KEYS_TABLE}",
                    f"insert into {CARD_KEYS_TABLE} (key_version, fingerprint, recorded_at)"
                    f" select {sql_literal(version)}, {sql_literal(fingerprint)}, {NOW}"
                    f" from {CARD_KEYS_TABLE} where key_version = {sql_literal(version)}"
                    " having count(*) = 0",
                ]
            )
            recorded = self.query(
                "select fingerprint, recorded_at, overlap_ends_at, retired_at"
                f" from {CARD_KEYS_TABLE} where key_version = {sql_literal(version)}"
            )
            # Redshift enforces no primary key: any row that disagrees refuses the key.
            records = [KeyRecord(str(row[0]), *row[1:]) for row in recorded]
            disagreeing = [record for record in records if record.fingerprint != fingerprint]
            checked: list[KeyRecord | None] = [*(disagreeing or records)] or [None]
            for record in checked:
                check_key_record(version, fingerprint, record, current=current)
            self._verified_keys.add((version, fingerprint, current))

    def _outcome(self, file: FileVersion) -> LoadResult:
        rows = self.query(
            "select status, duplicate_of, rows_read, rows_loaded, rows_rejected, error_text"
            f" from {LEDGER_TABLE} where load_id = {sql_literal(file.load_id)}"
        )
        if not rows:
            raise RedshiftStatementFailed("the load's ledger row is missing after its batch")
        status, duplicate_of, read, loaded, rejected, error_text = rows[0]
        counts = RowCounts(int(str(read)), int(str(loaded)), int(str(rejected)))
        return result_of(
            file,
            Status(str(status)),
            counts,
            None if error_text is None else str(error_text),
            None if duplicate_of is None else str(duplicate_of),
        )

    # -- the Data API ----------------------------------------------------------------------

    def execute(self, statement: str) -> str:
        """Run one statement (its own transaction) and wait for it; its id."""
        started = self.data_api.execute_statement(
            WorkgroupName=self.target.workgroup, Database=self.target.database, Sql=statement
        )
        self._wait(started["Id"])
        return started["Id"]

    def query(self, statement: str) -> list[list[object]]:
        """The rows of a query, each a list of Python values (None for SQL null)."""
        result = self.data_api.get_statement_result(Id=self.execute(statement))
        return [[_value(column) for column in record] for record in result.get("Records", [])]

    def run_transaction(self, statements: Sequence[str], *, answering: bool = False) -> None:
        """Run `statements` as one transaction and wait for it to finish.

        `answering`: the wait may use the reserve kept for answering (recording a failure).
        """
        batch = self.data_api.batch_execute_statement(
            WorkgroupName=self.target.workgroup,
            Database=self.target.database,
            Sqls=list(statements),
        )
        self._wait(batch["Id"], answering=answering)

    def _wait(self, statement_id: str, *, answering: bool = False) -> None:
        clock = self.deadline.clock
        budget = self.timeout_seconds
        remaining = self.deadline.remaining() if answering else self.deadline.remaining_for_work()
        if remaining is not None:
            budget = max(min(budget, remaining), 0.0)
        ends_at = clock() + budget
        while True:
            described: Any = self.data_api.describe_statement(Id=statement_id)
            status = described["Status"]
            if status == _DONE:
                return
            if status in _BROKEN:
                error = described.get("Error", "no error text")
                raise RedshiftStatementFailed(f"Redshift statement {status.lower()}: {error}")
            if clock() >= ends_at:
                raise RedshiftStatementFailed(self._cancel(statement_id, status, budget))
            self.sleep(max(min(self.poll_seconds, ends_at - clock()), 0.0))

    def _cancel(self, statement_id: str, status: str, budget: float) -> str:
        """Cancel a statement given up on; the error text that says so."""
        waited = f"Redshift statement still {status.lower()} after {budget:.0f} s"
        try:
            self.data_api.cancel_statement(Id=statement_id)
        except Exception as error:  # the statement may have ended meanwhile
            return f"{waited}; cancelling it failed: {type(error).__name__}"
        return f"{waited}: cancelled"

    # -- staging ---------------------------------------------------------------------------

    def _stage(
        self, file: FileVersion, batches: Iterator[CleanBatch], prefix: str
    ) -> tuple[RowCounts, bool]:
        """Stage every batch; the counts, and whether any card links were staged."""
        counts = RowCounts()
        linked = False
        for part, batch in enumerate(batches):
            counts += batch.counts
            if batch.rows.num_rows:
                self._put_parquet(f"{prefix}transactions/part-{part:05d}.parquet", batch.rows)
            if batch.rejected:
                self._put_parquet(
                    f"{prefix}rejected/part-{part:05d}.parquet", rejected_table(batch, file)
                )
            links = links_of(batch)
            if links.num_rows:
                linked = True
                self._put_parquet(
                    f"{prefix}links/part-{part:05d}.parquet", links.cast(CARD_LINKS_SCHEMA)
                )
        return counts, linked

    def _put_parquet(self, key: str, table: pa.Table) -> None:
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression=PARQUET_COMPRESSION)
        self.s3.put_object(Bucket=self.target.bucket, Key=key, Body=buffer.getvalue())

    def _delete_prefix(self, prefix: str) -> None:
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.target.bucket, Prefix=prefix):
            objects: list[ObjectIdentifierTypeDef] = [
                {"Key": entry["Key"]} for entry in page.get("Contents", [])
            ]
            if objects:
                self.s3.delete_objects(Bucket=self.target.bucket, Delete={"Objects": objects})


def link_statements(location: str, role: str) -> list[str]:
    """Stage the batch's card links and add those `raw.card_links` does not hold yet."""
    staged = ", ".join(CARD_LINK_COLUMNS[:-1])
    new_link = (
        'not exists (select 1 from "raw".card_links as held'
        " where held.card_hash = staged_links.card_hash"
        " and held.previous_card_hash = staged_links.previous_card_hash)"
    )
    return [
        f'create temp table staged_links as select {staged} from "raw".card_links limit 0',
        f"copy staged_links from {sql_literal(location)} iam_role {role} format as parquet",
        f'insert into "raw".card_links ({", ".join(CARD_LINK_COLUMNS)})'
        f" select distinct {staged}, {NOW} from staged_links"
        f" where {_LOADABLE} and {new_link}",
    ]


def decision_of(file: FileVersion) -> str:
    """The ledger's decision for `file`, its values inlined as Redshift literals."""
    sequencer = file.source.sequencer.upper() if file.source.sequencer else None
    return decision_query(
        {
            "load_id": sql_literal(file.load_id),
            "source_key": sql_literal(file.source_key),
            "checksum": sql_literal(file.checksum),
            "sequencer": sql_literal(sequencer),
            "modified_at": sql_literal(file.source.modified_at),
        }
    )


def started_statement(file: FileVersion) -> str:
    """The `started` row, committed before the work begins (finished_at stays null)."""
    row = ledger_row(file, Status.STARTED)
    return (
        f"insert into {LEDGER_TABLE} ({', '.join(row)})"
        f" values ({', '.join(sql_literal(value) for value in row.values())})"
    )


def close_statement(file: FileVersion, counts: RowCounts) -> str:
    """The `started` row closed with the decision (and the counts, when it loaded)."""

    def when_loaded(value: int) -> str:
        return f"case when decided_status in {_LOADS} then {value} else 0 end"

    return (
        f"update {LEDGER_TABLE} set status = decided_status,"
        f" is_current = decided_status in {_LOADS},"
        f" rows_read = {when_loaded(counts.read)},"
        f" rows_loaded = {when_loaded(counts.loaded)},"
        f" rows_rejected = {when_loaded(counts.rejected)},"
        " duplicate_of = decided_duplicate_of,"
        " error_text = case when decided_status = 'failed'"
        f" then {sql_literal(CHANGED_WHILE_DECIDING)} end,"
        f" finished_at = {NOW}"
        f" from load_decision where load_id = {sql_literal(file.load_id)}"
        " and status = 'started'"
    )


def attempt_statements(file: FileVersion, status: Status, error_text: str) -> list[str]:
    """A failed or refused attempt: its `started` row (if any) replaced by the closed row."""
    row = ledger_row(file, status, error_text=error_text)
    columns = [*row, "finished_at"]
    values = [*(sql_literal(value) for value in row.values()), NOW]
    assert set(columns) == set(LEDGER_COLUMNS)
    return [
        f"delete from {LEDGER_TABLE} where load_id = {sql_literal(file.load_id)}",
        f"insert into {LEDGER_TABLE} ({', '.join(columns)}) values ({', '.join(values)})",
    ]


def rejected_table(batch: CleanBatch, file: FileVersion) -> pa.Table:
    """A batch's refusals as rows of raw.rejected_rows (all but `rejected_at`), in order."""
    count = len(batch.rejected)
    return pa.Table.from_pydict(
        {
            "source_key": [file.source_key] * count,
            "file_checksum": [file.checksum] * count,
            "line_number": [row.line_number for row in batch.rejected],
            "reason": [row.reason for row in batch.rejected],
            "raw_line": [row.raw_line for row in batch.rejected],
            "card_hash": [card_hash_of(row)[0] for row in batch.rejected],
            "card_key_version": [card_hash_of(row)[1] for row in batch.rejected],
        },
        schema=REJECTED_SCHEMA,
    )


def _value(column: Any) -> object:
    """A Data API field as a Python value."""
    if column.get("isNull"):
        return None
    for kind in ("stringValue", "longValue", "booleanValue", "doubleValue"):
        if kind in column:
            return column[kind]
    return None
