"""Event shapes (S3 notification structure 2.1, as AWS documents it, wrapped by SQS)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from loader.events import ObjectRef, parse_event
from loader.filenames import parse_export_name


def s3_record(
    key: str, bucket: str = "cafe-landing", event_name: str = "ObjectCreated:Put"
) -> dict[str, Any]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "eu-west-2",
        "eventTime": "2024-01-13T09:00:00.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.10"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "landing-csv-to-queue",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": {
                "key": key,
                "size": 1024,
                "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                "sequencer": "0055AED6DCD90281E5",
            },
        },
    }


def sqs_record(body: dict[str, Any] | str, message_id: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1705136400000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1705136400001",
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-2:123456789012:cafe-landing-events",
        "awsRegion": "eu-west-2",
    }


TEST_EVENT = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2024-01-13T09:00:00.000Z",
    "Bucket": "cafe-landing",
    "RequestId": "5582815E1AEA5ADF",
    "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
}


def test_keys_are_url_decoded() -> None:
    event = {"Records": [sqs_record({"Records": [s3_record("landing/a+b%2Bc%26d.csv")]}, "m1")]}
    [message] = parse_event(event)
    assert message.message_id == "m1"
    [ref] = message.objects
    assert (ref.bucket, ref.key, ref.size) == ("cafe-landing", "landing/a b+c&d.csv", 1024)


def test_what_orders_versions_travels_with_the_object() -> None:
    record = s3_record("landing/x.csv")
    record["s3"]["object"]["versionId"] = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
    [message] = parse_event({"Records": [sqs_record({"Records": [record]}, "m1")]})
    assert message.objects == (
        ObjectRef(
            "cafe-landing",
            "landing/x.csv",
            1024,
            version_id="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
            sequencer="0055AED6DCD90281E5",
            event_time=datetime(2024, 1, 13, 9, 0, tzinfo=UTC),
        ),
    )


def test_an_event_without_version_sequencer_or_time_still_loads() -> None:
    record = s3_record("landing/x.csv")
    del record["s3"]["object"]["sequencer"]
    record["eventTime"] = "not a time"
    [message] = parse_event({"Records": [record]})
    [ref] = message.objects
    assert (ref.key, ref.version_id, ref.sequencer, ref.event_time) == (
        "landing/x.csv",
        None,
        None,
        None,
    )


def test_test_event_and_removals_carry_nothing_to_load() -> None:
    event = {
        "Records": [
            sqs_record(TEST_EVENT, "m1"),
            sqs_record(
                {"Records": [s3_record("landing/x.csv", event_name="ObjectRemoved:Delete")]}, "m2"
            ),
        ]
    }
    assert [(m.message_id, m.objects, m.error) for m in parse_event(event)] == [
        ("m1", (), None),
        ("m2", (), None),
    ]


def test_a_message_that_is_not_an_s3_notification_is_an_error() -> None:
    [message] = parse_event({"Records": [sqs_record("not json", "m9")]})
    assert message.message_id == "m9" and message.error and not message.objects


def test_direct_s3_event() -> None:
    [message] = parse_event({"Records": [s3_record("landing/x.csv"), s3_record("landing/y.csv")]})
    assert message.message_id is None
    assert [ref.key for ref in message.objects] == ["landing/x.csv", "landing/y.csv"]


def test_export_names() -> None:
    parsed = parse_export_name("landing/chesterfield_25-08-2021_09-00-00.csv")
    assert parsed is not None
    assert parsed.branch_name == "Chesterfield"
    assert parsed.exported_at.isoformat() == "2021-08-25T09:00:00"
    two_words = parse_export_name("long_eaton_01-02-2024_18-30-05.csv")
    assert two_words is not None and two_words.branch_name == "Long Eaton"
    assert parse_export_name("chesterfield_31-02-2021_09-00-00.csv") is None
    assert parse_export_name("notes.csv") is None
