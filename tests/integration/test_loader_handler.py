"""The Lambda handler end to end: S3 bucket -> SQS -> handler -> PostgreSQL (moto + real PG)."""

from __future__ import annotations

import csv
import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cafe.local_queue import LocalContext, drain_queue, sqs_event
from loader.aws import aws_client
from loader.handler import SERVICE_NAME, UnknownTask, lambda_handler
from loader.handler import logger as handler_logger
from loader.schema import ensure_schema
from loader.settings import Settings, load_settings

CARDS = ("4929123456789012", "5494173772652516")
HEADER = "date,location,name,basket,total,payment_type,card_number"
# Objects for tests that hand the handler their own events: outside the landing prefix, so
# that the bucket announces nothing that another test's drain would then load.
DIRECT = "direct/"


@pytest.fixture
def settings(
    stack: Settings, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    monkeypatch.setenv("CAFE_DATABASE_URL", fresh_database_url)
    yield load_settings()


def token() -> str:
    """A unique name part without digits: 12 digits in a row in a uuid's hex would make the
    key look like a card number, and the loader refuses such a key."""
    return uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))


def count(url: str, query: str, *params: object) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute(query, params).fetchone()
        return int(row[0]) if row else 0


def put(settings: Settings, key: str, body: bytes) -> None:
    aws_client(settings, "s3").put_object(Bucket=settings.landing_bucket, Key=key, Body=body)


def s3_notification(settings: Settings, key: str) -> dict[str, Any]:
    encoded = key.replace("+", "%2B").replace("&", "%26").replace(" ", "+")
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": settings.aws_region,
                "eventTime": "2024-01-13T09:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "local"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "1", "x-amz-id-2": "1"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "test",
                    "bucket": {
                        "name": settings.landing_bucket,
                        "ownerIdentity": {"principalId": "local"},
                        "arn": f"arn:aws:s3:::{settings.landing_bucket}",
                    },
                    "object": {"key": encoded, "size": 1, "eTag": "x", "sequencer": "1"},
                },
            }
        ]
    }


def as_sqs(settings: Settings, *bodies: dict[str, Any]) -> dict[str, Any]:
    messages: list[Any] = [
        {"MessageId": str(uuid.uuid4()), "ReceiptHandle": "r", "Body": json.dumps(body)}
        for body in bodies
    ]
    return sqs_event(
        messages, "arn:aws:sqs:eu-west-2:000000000000:cafe-landing-events", settings.aws_region
    )


def sample_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def discard_pending_messages(settings: Settings) -> None:
    """Empty the session's queue of what earlier tests left, so that a drain loads only this
    test's objects (the same bytes under another key would make them a copy)."""
    sqs = aws_client(settings, "sqs")
    assert settings.queue_url
    while messages := sqs.receive_message(
        QueueUrl=settings.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=settings.queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_bucket_to_queue_to_handler_loads_every_row(settings: Settings, samples_dir: Path) -> None:
    assert settings.database_url
    discard_pending_messages(settings)
    sample = sorted(samples_dir.glob("*.csv"))[0]
    key = f"landing/{token()[:6]} {sample.name}"  # a space: arrives URL-encoded
    put(settings, key, sample.read_bytes())
    report = drain_queue(settings)
    assert report.failed == [] and report.succeeded >= 1
    assert count(
        settings.database_url, "select count(*) from raw.transactions where source_key = %s", key
    ) == sample_rows(sample)
    assert (
        count(
            settings.database_url,
            "select count(*) from raw.loaded_files where source_key = %s and is_current",
            key,
        )
        == 1
    )


def test_same_event_five_times_loads_once(settings: Settings, samples_dir: Path) -> None:
    assert settings.database_url
    sample = sorted(samples_dir.glob("*.csv"))[1]
    key = f"{DIRECT}a+b&c " + sample.name
    put(settings, key, sample.read_bytes())
    event = as_sqs(settings, s3_notification(settings, key))
    for _ in range(5):
        assert lambda_handler(event, LocalContext()) == {"batchItemFailures": []}
    statuses = count(
        settings.database_url, "select count(*) from raw.loaded_files where status = 'duplicate'"
    )
    assert statuses == 4
    assert (
        count(settings.database_url, "select count(*) from raw.loaded_files where is_current") == 1
    )
    assert count(settings.database_url, "select count(*) from raw.transactions") == sample_rows(
        sample
    )


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_missing_object_fails_only_its_message_and_test_events_are_ignored(
    settings: Settings,
) -> None:
    good = f"{DIRECT}good-{token()}.csv"
    put(
        settings,
        good,
        (HEADER + "\n25/08/2021 09:00,B,N,Regular Latte - 1.00,1.00,CASH,\n").encode(),
    )
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Bucket": settings.landing_bucket,
    }
    event = as_sqs(
        settings,
        s3_notification(settings, good),
        s3_notification(settings, f"{DIRECT}missing-{token()}.csv"),
        test_event,
    )
    response = lambda_handler(event, LocalContext())
    missing_id = event["Records"][1]["messageId"]
    assert response == {"batchItemFailures": [{"itemIdentifier": missing_id}]}
    assert lambda_handler(as_sqs(settings, test_event), LocalContext()) == {"batchItemFailures": []}


def test_logs_and_metrics_hold_no_card_number(
    settings: Settings, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    assert settings.database_url
    lines = [
        f"25/08/2021 09:00,Chesterfield,Ann,Large Latte - 2.45,2.45,CARD,{CARDS[0]}",
        f"31/02/2024 09:00,Chesterfield,Bo,Large Latte - 2.45,2.45,CARD,{CARDS[1]}",
        f"bad,line,{CARDS[1]}",
    ]
    key = f"{DIRECT}privacy-{token()}.csv"
    put(settings, key, ("\r\n".join([HEADER, *lines]) + "\r\n").encode())
    # The powertools logger writes to the stream it found at import: tee it into a buffer.
    structured = io.StringIO()
    tee = logging.StreamHandler(structured)
    tee.setFormatter(handler_logger.registered_formatter)
    handler_logger.addHandler(tee)
    try:
        with caplog.at_level(logging.DEBUG):
            event = as_sqs(settings, s3_notification(settings, key))
            response = lambda_handler(event, LocalContext())
    finally:
        logging.getLogger(SERVICE_NAME).removeHandler(tee)
    assert response == {"batchItemFailures": []}
    output = capfd.readouterr()
    captured = output.out + output.err + caplog.text + structured.getvalue()
    emf = [json.loads(line) for line in output.out.splitlines() if '"_aws"' in line]
    assert emf and emf[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "CafeElt"
    assert emf[-1]["RowsRejected"] == [2.0] and emf[-1]["RowsLoaded"] == [1.0]
    logged = [json.loads(line) for line in structured.getvalue().splitlines()]
    assert [entry["rows_rejected"] for entry in logged if entry["message"] == "file processed"] == [
        2
    ]
    for card in CARDS:
        assert card not in captured
    assert (
        count(
            settings.database_url,
            "select count(*) from raw.rejected_rows where raw_line like %s",
            f"%{CARDS[1]}%",
        )
        == 0
    )


def test_direct_s3_event_loads(settings: Settings) -> None:
    assert settings.database_url
    key = f"{DIRECT}direct-{token()}.csv"
    put(
        settings,
        key,
        io.BytesIO(
            (HEADER + "\n25/08/2021 09:00,B,N,Regular Latte - 1.00,1.00,CASH,\n").encode()
        ).read(),
    )
    assert lambda_handler(s3_notification(settings, key), LocalContext()) == {
        "batchItemFailures": []
    }
    assert (
        count(
            settings.database_url,
            "select count(*) from raw.transactions where source_key = %s",
            key,
        )
        == 1
    )


def test_each_loaded_file_publishes_its_branch_for_the_silence_alarm(
    settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    key = f"{DIRECT}{token()[:4]}/ludlow_02-03-2024_09-00-00.csv"
    put(
        settings,
        key,
        (HEADER + "\r\n02/03/2024 09:00,Ludlow,N,Regular Latte - 1.00,1.00,CASH,\r\n").encode(),
    )
    capfd.readouterr()
    response = lambda_handler(as_sqs(settings, s3_notification(settings, key)), LocalContext())
    assert response == {"batchItemFailures": []}
    emf = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"_aws"' in line]
    per_branch = [entry for entry in emf if entry.get("branch") == "ludlow"]
    assert len(per_branch) == 1
    assert per_branch[0]["FilesLoaded"] == [1.0]
    assert per_branch[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "branch"]]
    # A duplicate delivery is not a new file: no second branch datapoint.
    lambda_handler(as_sqs(settings, s3_notification(settings, key)), LocalContext())
    again = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"_aws"' in line]
    assert not [entry for entry in again if entry.get("branch") == "ludlow"]


@dataclass(frozen=True)
class ShortContext(LocalContext):
    """An invocation that has little time left."""

    timeout_seconds: float = 5


@dataclass(frozen=True)
class SlowFirstFileContext(LocalContext):
    """An invocation whose first file took most of its time: 120 s remain until a load is
    in the ledger, then 20 s (less than the handler wants to start another file)."""

    database_url: str = ""

    def get_remaining_time_in_millis(self) -> int:
        done = count(self.database_url, "select count(*) from raw.loaded_files")
        return 20_000 if done else 120_000


def test_files_are_not_started_too_close_to_the_deadline(settings: Settings) -> None:
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        ensure_schema(connection)  # the ledger exists, empty: nothing was recorded
    keys = [f"{DIRECT}deadline-{token()}.csv" for _ in range(3)]
    for index, key in enumerate(keys):
        body = f"{HEADER}\n25/08/2021 09:0{index},B{index},N,Regular Latte - 1.00,1.00,CASH,\n"
        put(settings, key, body.encode())
    event = as_sqs(settings, *(s3_notification(settings, key) for key in keys))
    ids = [record["messageId"] for record in event["Records"]]

    deferred = lambda_handler(event, ShortContext())
    assert deferred == {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
    assert count(settings.database_url, "select count(*) from raw.loaded_files") == 0

    partly = lambda_handler(event, SlowFirstFileContext(database_url=settings.database_url))
    assert partly == {"batchItemFailures": [{"itemIdentifier": i} for i in ids[1:]]}
    assert (
        count(
            settings.database_url, "select count(*) from raw.loaded_files where status = 'loaded'"
        )
        == 1
    )
    # Redelivered later, the unstarted files load; the first is a duplicate.
    assert lambda_handler(event, LocalContext()) == {"batchItemFailures": []}
    assert (
        count(
            settings.database_url, "select count(*) from raw.loaded_files where status = 'loaded'"
        )
        == 3
    )


def test_the_daily_retention_task_clears_old_names_and_keeps_recent_ones(
    settings: Settings, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.database_url
    monkeypatch.setenv("CAFE_NAME_RETENTION_DAYS", "30")
    today = datetime.now(UTC)
    old, recent = today - timedelta(days=400), today - timedelta(days=1)
    key = f"{DIRECT}retention-{token()}.csv"
    body = (
        f"{HEADER}\r\n{old:%d/%m/%Y} 09:00,Leeds,Ann Old,Regular Latte - 1.00,1.00,CASH,\r\n"
        f"{recent:%d/%m/%Y} 09:00,Leeds,Bo Recent,Regular Latte - 1.00,1.00,CASH,\r\n"
    )
    put(settings, key, body.encode())
    assert lambda_handler(as_sqs(settings, s3_notification(settings, key)), LocalContext()) == {
        "batchItemFailures": []
    }
    capfd.readouterr()
    response = lambda_handler({"task": "retention"}, LocalContext())
    assert (response["task"], response["names_cleared"], response["files_left_busy"]) == (
        "retention",
        1,
        0,
    )
    with psycopg.connect(settings.database_url) as connection:
        names = connection.execute(
            "select customer_name from raw.transactions order by line_number"
        ).fetchall()
        audit = connection.execute(
            "select action, transactions_affected from raw.privacy_audit"
        ).fetchall()
    assert names == [(None,), ("Bo Recent",)]
    assert audit == [("retention", 1)]
    emf = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf and emf[-1]["NamesCleared"] == [1.0]
    again = lambda_handler({"task": "retention"}, LocalContext())
    assert again["names_cleared"] == 0  # idempotent


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_an_unknown_task_fails_the_invocation(settings: Settings) -> None:
    with pytest.raises(UnknownTask, match="retention"):
        lambda_handler({"task": "vacuum"}, LocalContext())
