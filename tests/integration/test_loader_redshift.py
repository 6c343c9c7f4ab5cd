"""The Redshift writer with a stand-in Data API (Redshift cannot run here) and real (moto) S3.

The fake client records every call and answers like the Data API does; the statements it
receives are checked word for word and parsed with sqlfluff's Redshift dialect, and the
Parquet files staged in the bucket are read back before the writer cleans them up.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlfluff

from loader.aws import aws_client
from loader.hashing import CardKey
from loader.ledger import Status
from loader.schema import REDSHIFT_DDL
from loader.service import load_path
from loader.settings import Settings
from loader.writers.redshift import (
    RedshiftStatementFailed,
    RedshiftTarget,
    RedshiftWarehouse,
    sql_literal,
)

KEY = CardKey(b"redshift-test-key-0123456789abcdef", "rs-v1")
HEADER = "date,location,name,basket,total,payment_type,card_number"
CARD = "4929123456789012"
ROLE = "arn:aws:iam::123456789012:role/cafe-redshift-copy"


@dataclass
class FakeDataApi:
    """Answers like redshift-data; snapshots the staged Parquet when the COPY batch runs."""

    s3: Any
    bucket: str
    current_checksum: str | None = None
    batch_status: str = "FINISHED"
    batches: list[list[str]] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)
    staged: dict[str, bytes] = field(default_factory=dict)
    _status: dict[str, str] = field(default_factory=dict)

    def execute_statement(self, **kwargs: Any) -> dict[str, str]:
        self.queries.append(kwargs)
        return self._started("FINISHED")

    def batch_execute_statement(self, **kwargs: Any) -> dict[str, str]:
        self.batches.append(list(kwargs["Sqls"]))
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="staged/")
        for entry in listing.get("Contents", []):
            body = self.s3.get_object(Bucket=self.bucket, Key=entry["Key"])["Body"].read()
            self.staged[entry["Key"]] = body
        return self._started(self.batch_status)

    def describe_statement(self, Id: str) -> dict[str, str]:
        status = self._status[Id]
        return {
            "Id": Id,
            "Status": status,
            "Error": "ERROR: permission denied" if status == "FAILED" else "",
        }

    def get_statement_result(self, Id: str) -> dict[str, Any]:
        records = [[{"stringValue": self.current_checksum}]] if self.current_checksum else []
        return {"Records": records, "TotalNumRows": len(records)}

    def _started(self, status: str) -> dict[str, str]:
        statement_id = str(uuid.uuid4())
        self._status[statement_id] = status
        return {"Id": statement_id}


@pytest.fixture
def parts(stack: Settings) -> tuple[RedshiftWarehouse, FakeDataApi, Any]:
    s3 = aws_client(stack, "s3")
    fake = FakeDataApi(s3=s3, bucket=stack.landing_bucket)
    target = RedshiftTarget("cafe", "dev", ROLE, stack.landing_bucket)
    warehouse = RedshiftWarehouse(target, data_api=fake, s3=s3, poll_seconds=0)  # type: ignore[arg-type]
    return warehouse, fake, s3


def export(tmp_path: Path) -> Path:
    path = tmp_path / "chesterfield_25-08-2021_09-00-00.csv"
    path.write_text(
        "\r\n".join(
            [
                HEADER,
                "25/08/2021 09:00,Chesterfield,Ann O'Neil,"
                f'"Large Latte - 2.45, Regular Mocha - 2.30",4.75,CARD,{CARD}',
                "25/08/2021 09:05,Chesterfield,Bo,Regular Latte - 2.15,2.15,CASH,",
                f"31/02/2021 09:10,Chesterfield,Cy,Regular Latte - 2.15,2.15,CARD,{CARD}",
            ]
        )
        + "\r\n",
        newline="",
    )
    return path


def assert_parses_as_redshift(statement: str) -> None:
    tree = sqlfluff.parse(statement, dialect="redshift")  # raises on unparsable SQL
    assert "unparsable" not in repr(tree)


def test_load_stages_parquet_and_runs_one_transaction(
    parts: tuple[RedshiftWarehouse, FakeDataApi, Any], tmp_path: Path
) -> None:
    warehouse, fake, s3 = parts
    key = f"landing/{uuid.uuid4().hex}/chesterfield_25-08-2021_09-00-00.csv"
    result = load_path(export(tmp_path), key, warehouse=warehouse, key=KEY)
    assert result.status is Status.LOADED, result.error_text
    assert (result.counts.loaded, result.counts.rejected) == (2, 1)

    [query] = fake.queries
    assert query["Parameters"] == [{"name": "source_key", "value": key}]
    [statements] = fake.batches
    prefix = f"s3://{warehouse.target.bucket}/staged/{result.load_id}/"
    literal_key = sql_literal(key)
    assert statements[:5] == [
        f'delete from "raw".transactions where source_key = {literal_key}',
        f'delete from "raw".rejected_rows where source_key = {literal_key}',
        f'update "raw".loaded_files set is_current = false where source_key = {literal_key}'
        " and is_current",
        f"copy \"raw\".transactions from '{prefix}transactions/' iam_role '{ROLE}'"
        " format as parquet",
        f"copy \"raw\".rejected_rows from '{prefix}rejected/' iam_role '{ROLE}' format as parquet",
    ]
    assert statements[5].startswith(
        'insert into "raw".loaded_files (load_id, source_key, file_checksum,'
    )
    assert f"'{result.load_id}'" in statements[5] and "'loaded', true, 3, 2, 1" in statements[5]
    assert len(statements) == 6
    # The Data API binds :source_key itself; sqlfluff sees the statement as Redshift would.
    bound_query = query["Sql"].replace(":source_key", literal_key)
    for statement in [*statements, bound_query, *REDSHIFT_DDL]:
        assert_parses_as_redshift(statement)

    transactions = [
        pq.read_table(io.BytesIO(body))
        for name, body in fake.staged.items()
        if "/transactions/" in name
    ]
    rejected = [
        pq.read_table(io.BytesIO(body))
        for name, body in fake.staged.items()
        if "/rejected/" in name
    ]
    table = pa.concat_tables(transactions)
    assert table.column_names == [
        "source_key",
        "line_number",
        "file_checksum",
        "transaction_date",
        "branch_name",
        "customer_name",
        "basket",
        "total_amount",
        "payment_type",
        "card_hash",
        "card_key_version",
        "loaded_at",
    ]
    assert table.schema.field("total_amount").type == pa.decimal128(12, 2)
    assert table.schema.field("loaded_at").type == pa.timestamp("us", tz="UTC")
    assert sorted(table.column("line_number").to_pylist()) == [2, 3]
    assert pa.concat_tables(rejected).column("line_number").to_pylist() == [4]
    for body in fake.staged.values():
        assert CARD.encode() not in body
        assert CARD not in repr(pq.read_table(io.BytesIO(body)).to_pylist())
    assert (
        s3.list_objects_v2(Bucket=warehouse.target.bucket, Prefix=f"staged/{result.load_id}/").get(
            "KeyCount"
        )
        == 0
    )


def test_duplicate_is_recorded_without_staging(
    parts: tuple[RedshiftWarehouse, FakeDataApi, Any], tmp_path: Path
) -> None:
    warehouse, fake, _ = parts
    path = export(tmp_path)
    import hashlib

    fake.current_checksum = hashlib.sha256(path.read_bytes()).hexdigest()
    result = load_path(path, "landing/dup.csv", warehouse=warehouse, key=KEY)
    assert result.status is Status.DUPLICATE
    [[statement]] = fake.batches
    assert (
        statement.startswith('insert into "raw".loaded_files')
        and "'duplicate', false, 0, 0, 0" in statement
    )
    assert fake.staged == {}


def test_failed_copy_is_recorded_and_staging_cleaned(
    parts: tuple[RedshiftWarehouse, FakeDataApi, Any], tmp_path: Path
) -> None:
    warehouse, fake, s3 = parts
    fake.batch_status = "FAILED"
    with pytest.raises(RedshiftStatementFailed):
        warehouse.run_transaction(["select 1"])
    result = load_path(export(tmp_path), "landing/fails.csv", warehouse=warehouse, key=KEY)
    assert result.status is Status.FAILED
    assert result.error_text == "Redshift statement failed: ERROR: permission denied"
    assert (
        s3.list_objects_v2(Bucket=warehouse.target.bucket, Prefix=f"staged/{result.load_id}/").get(
            "KeyCount"
        )
        == 0
    )


def test_sql_literals_escape_quotes_and_backslashes() -> None:
    assert sql_literal("O'Neil\\x") == "'O''Neil\\\\x'"
    assert sql_literal(None) == "null" and sql_literal(True) == "true" and sql_literal(3) == "3"
    with pytest.raises(ValueError):
        sql_literal("line\nbreak")
