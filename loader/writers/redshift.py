"""Redshift writer: Parquet staged in S3, then one Data API batch that COPYs it.

    clean batches ──► s3://<bucket>/staged/<load_id>/transactions/part-NNNNN.parquet
                  └─► s3://<bucket>/staged/<load_id>/rejected/part-NNNNN.parquet
    batch_execute_statement (one transaction):
        delete the key's rows and refusals; retire its current ledger row;
        COPY ... FORMAT AS PARQUET; insert the ledger row
    describe_statement until FINISHED (FAILED/ABORTED raise); staged objects deleted always

The ledger decision is read first through `execute_statement`. Redshift has no advisory
locks; instead every load transaction deletes the key's rows before its COPY, even for a
key never loaded. Two workers that raced past the decision then write the same rows of
the same tables concurrently, which Redshift's serializable isolation refuses for one of
them (error 1023): that batch fails, its SQS message is retried, and the retry finds the
file current and records a duplicate. Rows are loaded once either way.

`RAW` is a reserved word in Redshift (a column encoding), so the schema is always written
`"raw"` here.

COPY from Parquet takes no column list: it fills the table's columns in order from the
file's columns, so the staged schemas below list every column in table order.

`batch_execute_statement` takes no bind parameters, so values are inlined as literals by
`sql_literal`, which doubles quotes and backslashes (Redshift reads a backslash in a
literal as an escape) and refuses control characters.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from loader.aws import aws_client
from loader.batches import TRANSACTIONS_SCHEMA as BATCH_SCHEMA
from loader.batches import BatchFactory, CleanBatch
from loader.errors import CafeError, ConfigurationError
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
from loader.schema import LEDGER_COLUMNS
from loader.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_redshift_data import RedshiftDataAPIServiceClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

TRANSACTIONS_SCHEMA: Final = BATCH_SCHEMA.append(
    pa.field("loaded_at", pa.timestamp("us", tz="UTC"), nullable=False)
)
REJECTED_SCHEMA: Final = pa.schema(
    [
        pa.field("source_key", pa.string(), nullable=False),
        pa.field("file_checksum", pa.string(), nullable=False),
        pa.field("line_number", pa.int32(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw_line", pa.string()),
        pa.field("rejected_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
_DONE: Final = "FINISHED"
_BROKEN: Final = ("FAILED", "ABORTED")


class RedshiftStatementFailed(CafeError):
    """A Data API statement ended FAILED or ABORTED."""


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
        raise ValueError("control characters cannot be inlined in Redshift SQL")
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
    ) -> None:
        self.target = target
        self.data_api = data_api
        self.s3 = s3
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> RedshiftWarehouse:
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
        )

    # -- the Warehouse protocol ------------------------------------------------------------

    def load(self, file: FileVersion, batches: BatchFactory) -> LoadResult:
        decision = decide(self._current_checksum(file.source_key), file.checksum)
        if decision is Decision.SKIP:
            self.run_transaction([self._ledger_insert(file, Status.DUPLICATE, False, RowCounts())])
            return result_of(file, Status.DUPLICATE, RowCounts(), None)
        prefix = staged_prefix(file.load_id)
        try:
            counts = self._stage(file, batches(), prefix)
            self.run_transaction(self.load_statements(file, decision.value, counts))
        finally:
            self._delete_prefix(prefix)
        return result_of(file, decision.value, counts, None)

    def record_attempt(self, file: FileVersion, status: Status, error_text: str) -> LoadResult:
        self.run_transaction([self._ledger_insert(file, status, False, RowCounts(), error_text)])
        return result_of(file, status, RowCounts(), error_text)

    # -- SQL -------------------------------------------------------------------------------

    def load_statements(self, file: FileVersion, status: Status, counts: RowCounts) -> list[str]:
        """The statements of one load's transaction, in order."""
        key = sql_literal(file.source_key)
        location = f"s3://{self.target.bucket}/{staged_prefix(file.load_id)}"
        role = sql_literal(self.target.copy_role_arn)
        statements = [
            f'delete from "raw".transactions where source_key = {key}',
            f'delete from "raw".rejected_rows where source_key = {key}',
            f'update "raw".loaded_files set is_current = false where source_key = {key}'
            " and is_current",
        ]
        if counts.loaded:
            statements.append(
                'copy "raw".transactions'
                f" from {sql_literal(location + 'transactions/')}"
                f" iam_role {role} format as parquet"
            )
        if counts.rejected:
            statements.append(
                'copy "raw".rejected_rows'
                f" from {sql_literal(location + 'rejected/')}"
                f" iam_role {role} format as parquet"
            )
        statements.append(self._ledger_insert(file, status, True, counts))
        return statements

    @staticmethod
    def _ledger_insert(
        file: FileVersion,
        status: Status,
        is_current: bool,
        counts: RowCounts,
        error_text: str | None = None,
    ) -> str:
        literals = [sql_literal(value) for value in ledger_values(file, status, is_current, counts)]
        literals += ["getdate()", sql_literal(_one_line(error_text)), sql_literal(LOADER_VERSION)]
        return (
            f'insert into "raw".loaded_files ({", ".join(LEDGER_COLUMNS)})'
            f" values ({', '.join(literals)})"
        )

    def _current_checksum(self, source_key: str) -> str | None:
        statement = self.data_api.execute_statement(
            WorkgroupName=self.target.workgroup,
            Database=self.target.database,
            Sql='select file_checksum from "raw".loaded_files'
            " where source_key = :source_key and is_current",
            Parameters=[{"name": "source_key", "value": source_key}],
        )
        self._wait(statement["Id"])
        result = self.data_api.get_statement_result(Id=statement["Id"])
        records = result.get("Records", [])
        return str(records[0][0]["stringValue"]) if records else None

    def run_transaction(self, statements: Sequence[str]) -> None:
        """Run `statements` as one transaction and wait for it to finish."""
        batch = self.data_api.batch_execute_statement(
            WorkgroupName=self.target.workgroup,
            Database=self.target.database,
            Sqls=list(statements),
        )
        self._wait(batch["Id"])

    def _wait(self, statement_id: str) -> None:
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            described: Any = self.data_api.describe_statement(Id=statement_id)
            status = described["Status"]
            if status == _DONE:
                return
            if status in _BROKEN:
                error = described.get("Error", "no error text")
                raise RedshiftStatementFailed(f"Redshift statement {status.lower()}: {error}")
            if time.monotonic() > deadline:
                with suppress(Exception):
                    self.data_api.cancel_statement(Id=statement_id)
                raise RedshiftStatementFailed(
                    f"Redshift statement still {status.lower()} after {self.timeout_seconds:.0f} s"
                )
            self.sleep(self.poll_seconds)

    # -- staging ---------------------------------------------------------------------------

    def _stage(self, file: FileVersion, batches: Iterator[CleanBatch], prefix: str) -> RowCounts:
        counts = RowCounts()
        for part, batch in enumerate(batches):
            counts += batch.counts
            if batch.rows.num_rows:
                self._put_parquet(
                    f"{prefix}transactions/part-{part:05d}.parquet",
                    transactions_table(batch, file.started_at),
                )
            if batch.rejected:
                self._put_parquet(
                    f"{prefix}rejected/part-{part:05d}.parquet",
                    rejected_table(batch, file),
                )
        return counts

    def _put_parquet(self, key: str, table: pa.Table) -> None:
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        self.s3.put_object(Bucket=self.target.bucket, Key=key, Body=buffer.getvalue())

    def _delete_prefix(self, prefix: str) -> None:
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.target.bucket, Prefix=prefix):
            objects: list[ObjectIdentifierTypeDef] = [
                {"Key": entry["Key"]} for entry in page.get("Contents", [])
            ]
            if objects:
                self.s3.delete_objects(Bucket=self.target.bucket, Delete={"Objects": objects})


def transactions_table(batch: CleanBatch, loaded_at: datetime) -> pa.Table:
    """A batch's rows with `loaded_at` added: every column of raw.transactions, in order."""
    stamp = pa.array([loaded_at] * batch.rows.num_rows, pa.timestamp("us", tz="UTC"))
    return batch.rows.append_column(TRANSACTIONS_SCHEMA.field("loaded_at"), stamp)


def rejected_table(batch: CleanBatch, file: FileVersion) -> pa.Table:
    count = len(batch.rejected)
    return pa.Table.from_pydict(
        {
            "source_key": [file.source_key] * count,
            "file_checksum": [file.checksum] * count,
            "line_number": [row.line_number for row in batch.rejected],
            "reason": [row.reason for row in batch.rejected],
            "raw_line": [row.raw_line for row in batch.rejected],
            "rejected_at": [file.started_at] * count,
        },
        schema=REJECTED_SCHEMA,
    )


def _one_line(text: str | None) -> str | None:
    return None if text is None else " ".join(text.split())
