"""The S3 path decides (issue 9 points 3, 6, 7) on the real local stack: moto S3 + SQS
notifications, the Lambda handler, the real PostgreSQL.

* every object under `landing/` is announced (the notification filters on the prefix
  only): a `.CSV` loads, anything else is recorded as refused;
* a card number in the key refuses the file, and the key is stored, logged and measured
  only masked: not in the ledger, the handler's log, its metrics, moto's log or the
  PostgreSQL server log;
* a versioned bucket's late event for an older version fetches that version and records
  it as stale; a late event that names no version loads nothing twice either.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import psycopg
import pytest

from cafe.local_queue import LocalContext, drain_queue, sqs_event
from loader.aws import aws_client
from loader.handler import SERVICE_NAME, lambda_handler
from loader.handler import logger as handler_logger
from loader.settings import Settings, load_settings
from tests.integration.test_loader_handler import discard_pending_messages
from tests.privacy_scan import scan_database, scan_log_files, scan_log_text, scan_text

HEADER = "date,location,name,basket,total,payment_type,card_number"
CARD = "4111111111111111"


def folder() -> str:
    """A fresh folder under the prefix, in letters only (digits next to a key's card
    number would join it, as a slash is a separator)."""
    return "landing/" + uuid.uuid4().hex[:8].translate(str.maketrans("0123456789", "ghijklmnop"))


def export(branch: str, lines: int = 2) -> bytes:
    rows = [
        f"02/02/2024 09:{minute:02d},{branch},Ann,Regular Latte - 2.15,2.15,CASH,"
        for minute in range(lines)
    ]
    return ("\r\n".join([HEADER, *rows]) + "\r\n").encode()


@pytest.fixture
def settings(
    stack: Settings, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    monkeypatch.setenv("CAFE_DATABASE_URL", fresh_database_url)
    yield load_settings()


def ledger(settings: Settings, where: str, *params: object) -> list[tuple[Any, ...]]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as connection:
        return connection.execute(
            "select source_key, status, error_text, rows_loaded, duplicate_of"
            f" from raw.loaded_files where {where} order by started_at",
            params,
        ).fetchall()


def test_every_object_under_the_prefix_is_announced_and_the_loader_decides(
    settings: Settings,
) -> None:
    discard_pending_messages(settings)
    where = folder()
    s3 = aws_client(settings, "s3")
    upper = f"{where}/ripon_01-02-2024_09-00-00.CSV"
    notes = f"{where}/notes.txt"
    s3.put_object(Bucket=settings.landing_bucket, Key=upper, Body=export("Ripon"))
    s3.put_object(Bucket=settings.landing_bucket, Key=notes, Body=b"remember the milk")
    report = drain_queue(settings)
    assert report.failed == []  # a refused file is recorded for good, not retried
    assert ledger(settings, "source_key like %s", f"{where}/%") == [
        (upper, "loaded", None, 2, None),
        (notes, "refused", "file name: not a .csv file", 0, None),
    ]


def test_the_same_export_uploaded_under_two_names_loads_once(settings: Settings) -> None:
    discard_pending_messages(settings)
    where = folder()
    s3 = aws_client(settings, "s3")
    keys = [f"{where}/whitby_04-02-2024_09-00-00.csv", f"{where}/whitby (copy).csv"]
    for key in keys:
        s3.put_object(Bucket=settings.landing_bucket, Key=key, Body=export("Whitby", 4))
    assert drain_queue(settings).failed == []
    rows = ledger(settings, "source_key like %s", f"{where}/%")
    [loaded] = [row for row in rows if row[1] == "loaded"]
    [copy] = [row for row in rows if row[1] == "duplicate"]
    assert (loaded[3], copy[3], copy[4]) == (4, 0, loaded[0])
    assert settings.database_url
    with psycopg.connect(settings.database_url) as connection:
        assert connection.execute(
            "select count(*), count(distinct source_key) from raw.transactions"
            " where source_key like %s",
            (f"{where}/%",),
        ).fetchone() == (4, 1)


def test_a_card_number_in_the_key_refuses_the_file_and_never_leaves_the_bucket(
    settings: Settings,
    stack_root: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    discard_pending_messages(settings)
    where = folder()
    disguises = ["4111-1111-1111-1111", "4111.1111.1111.1111", "4111 1111 1111 1111"]
    keys = [f"{where}/{card}_02-02-2024_09-00-00.csv" for card in disguises]
    s3 = aws_client(settings, "s3")
    for key in keys:
        s3.put_object(Bucket=settings.landing_bucket, Key=key, Body=export("Leeds"))
    structured = io.StringIO()
    tee = logging.StreamHandler(structured)
    tee.setFormatter(handler_logger.registered_formatter)
    handler_logger.addHandler(tee)
    try:
        with caplog.at_level(logging.DEBUG):
            report = drain_queue(settings)
    finally:
        logging.getLogger(SERVICE_NAME).removeHandler(tee)
    assert report.failed == []
    rows = ledger(settings, "source_key like %s", f"{where}/%")
    assert [(status, error) for _, status, error, _, _ in rows] == [
        ("refused", "file name: a card number, or a number like one, appears in the file name")
    ] * 3
    assert {key for key, *_ in rows} == {f"{where}/************1111_02-02-2024_09-00-00.csv"}
    output = capfd.readouterr()
    logged = output.out + output.err + caplog.text + structured.getvalue()
    emf = [json.loads(line) for line in output.out.splitlines() if '"_aws"' in line]
    assert emf and all(entry.get("LoadErrors") for entry in emf)  # measured as refused
    assert "************1111_02-02-2024" in structured.getvalue()  # logged, masked
    assert settings.database_url
    assert scan_database(settings.database_url, known_cards=[CARD]) == []
    assert scan_log_text(logged, "handler output", known_cards=[CARD]) == []
    # moto logs no request line (its path holds the key); the server log no statement.
    for log in (stack_root / "moto.log", stack_root / "pg" / "server.log"):
        text = log.read_text(errors="replace")
        assert quote(keys[0]) not in text
        for number, line in enumerate(text.splitlines(), start=1):
            # Line by line: a line's last number and the next line's date are not one number.
            assert scan_text(unquote(line), f"{log.name}:{number}", known_cards=[CARD]) == []


def test_the_server_log_keeps_no_value_of_a_failing_statement(
    settings: Settings, stack_root: Path
) -> None:
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        assert connection.execute("show log_min_messages").fetchone() == ("log",)
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            connection.execute("select '4111 1111 1111 1111 Ann Lee'::numeric")
    assert (
        scan_log_files(
            [stack_root / "pg" / "server.log"], known_cards=[CARD], known_values=["Ann Lee"]
        )
        == []
    )


@pytest.fixture
def versioned_bucket(settings: Settings) -> Iterator[str]:
    """A versioned bucket without notifications: the test delivers the events itself."""
    name = f"cafe-versions-{uuid.uuid4().hex[:8]}"
    s3 = aws_client(settings, "s3")
    s3.create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": settings.aws_region}
    )
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name


def created_event(
    settings: Settings, bucket: str, key: str, version_id: str | None, sequencer: str | None
) -> dict[str, Any]:
    """An SQS-wrapped S3 ObjectCreated notification, as AWS writes it."""
    s3_object: dict[str, Any] = {"key": quote(key), "size": 1, "eTag": "x"}
    if version_id:
        s3_object["versionId"] = version_id
    if sequencer:
        s3_object["sequencer"] = sequencer
    notification = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": settings.aws_region,
                "eventTime": "2024-02-03T09:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "landing-to-queue",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": s3_object,
                },
            }
        ]
    }
    message: Any = {
        "MessageId": str(uuid.uuid4()),
        "ReceiptHandle": "r",
        "Body": json.dumps(notification),
    }
    return sqs_event([message], "arn:aws:sqs:eu-west-2:000000000000:q", settings.aws_region)


def test_a_late_event_of_an_older_version_is_stale(
    settings: Settings, versioned_bucket: str
) -> None:
    s3 = aws_client(settings, "s3")
    key = "landing/leeds_03-02-2024_09-00-00.csv"
    first = s3.put_object(Bucket=versioned_bucket, Key=key, Body=export("Leeds", 5))
    correction = s3.put_object(Bucket=versioned_bucket, Key=key, Body=export("Leeds", 3))

    def deliver(version_id: str | None, sequencer: str | None) -> None:
        event = created_event(settings, versioned_bucket, key, version_id, sequencer)
        assert lambda_handler(event, LocalContext()) == {"batchItemFailures": []}

    # The correction's event arrives first, the original's after it.
    deliver(correction["VersionId"], "0065B1C2D3E4F50002")
    deliver(first["VersionId"], "0065B1C2D3E4F50001")
    # A late event that names no version fetches the newest bytes: a duplicate.
    deliver(None, None)
    assert [row[1:] for row in ledger(settings, "source_key = %s", key)] == [
        ("loaded", None, 3, None),
        ("stale", None, 0, None),
        ("duplicate", None, 0, key),
    ]
    assert settings.database_url
    with psycopg.connect(settings.database_url) as connection:
        versions = connection.execute(
            "select source_version, source_modified_at is not null from raw.loaded_files"
            " where source_key = %s order by started_at",
            (key,),
        ).fetchall()
    assert versions[:2] == [
        (f"sequencer=0065B1C2D3E4F50002 version={correction['VersionId']}", True),
        (f"sequencer=0065B1C2D3E4F50001 version={first['VersionId']}", True),
    ]
