"""The objects an invocation must load, from SQS-wrapped or direct S3 notifications.

S3 URL-encodes object keys in notifications (a space arrives as `+`, a `+` as `%2B`), so
keys are decoded with `unquote_plus`. The `s3:TestEvent` S3 sends when a notification is
configured, and events other than ObjectCreated, carry nothing to load. A message whose
body cannot be read as an S3 notification is reported as a failure so that it goes to
the dead-letter queue instead of being dropped silently.

Each object keeps what orders its versions: the event's `sequencer` (S3 orders the events
of one key by it), the object's `versionId` (a versioned bucket: the loader fetches that
very version, not whatever is newest) and the `eventTime`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, SQSEvent

TEST_EVENT = "s3:TestEvent"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    bucket: str
    key: str
    size: int | None = None
    version_id: str | None = None
    sequencer: str | None = None
    event_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One unit of retry: an SQS message (`message_id`), or a whole direct S3 event (None)."""

    message_id: str | None
    objects: tuple[ObjectRef, ...] = ()
    error: str | None = None


def is_sqs_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records") or []
    return bool(records) and records[0].get("eventSource") == "aws:sqs"


def objects_of_s3_event(notification: Mapping[str, Any]) -> tuple[ObjectRef, ...]:
    """The created objects of an S3 notification (nothing for a test event)."""
    if notification.get("Event") == TEST_EVENT:
        return ()
    refs = []
    for record in S3Event(dict(notification)).records:
        if not record.event_name.startswith("ObjectCreated:"):
            continue
        s3_object = record.s3.get_object
        size = s3_object.get("size")
        refs.append(
            ObjectRef(
                bucket=record.s3.bucket.name,
                key=unquote_plus(s3_object.key),
                size=int(size) if size is not None else None,
                version_id=s3_object.get("versionId") or None,
                sequencer=s3_object.get("sequencer") or None,
                event_time=_event_time(record.get("eventTime")),
            )
        )
    return tuple(refs)


def _event_time(text: object) -> datetime | None:
    """S3's `eventTime` (ISO 8601, `Z` for UTC); None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def parse_event(event: Mapping[str, Any]) -> list[Message]:
    """The messages of a Lambda event, each with the objects it asks to load."""
    if not is_sqs_event(event):
        return [Message(None, objects_of_s3_event(event))]
    messages = []
    for record in SQSEvent(dict(event)).records:
        try:
            body = json.loads(record.body)
            if not isinstance(body, dict):
                raise ValueError("the body is not a JSON object")
            messages.append(Message(record.message_id, objects_of_s3_event(body)))
        except (ValueError, KeyError, TypeError) as error:
            reason = f"not an S3 notification: {type(error).__name__}: {error}"
            messages.append(Message(record.message_id, error=reason))
    return messages
