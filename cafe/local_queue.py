"""Drain the local landing queue through the Lambda handler, as Lambda's SQS poller would.

Messages are received in batches of up to 10 with long polling off, wrapped into the SQS
event shape Lambda delivers, and handed to `lambda_handler`. Messages the handler reports
in `batchItemFailures` are left on the queue: they reappear after the visibility timeout
and, after `maxReceiveCount` receives, land in the dead-letter queue — the production
redrive path. Draining stops when a receive comes back empty.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loader.aws import aws_client
from loader.errors import ConfigurationError
from loader.handler import lambda_handler
from loader.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

Handler = Callable[[Mapping[str, Any], Any], Mapping[str, Any]]
MAX_BATCH = 10


# The production Lambda's timeout (infra/templates/pipeline.yaml).
LAMBDA_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class LocalContext:
    """The attributes of a Lambda context object that the handler and powertools read.

    Like Lambda's, its remaining time counts down from the invocation's start.
    """

    function_name: str = "cafe-loader-local"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:cafe-loader-local"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/cafe-loader-local"
    log_stream_name: str = "local"
    timeout_seconds: float = LAMBDA_TIMEOUT_SECONDS
    started_at: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self.started_at
        return max(int((self.timeout_seconds - elapsed) * 1000), 0)


@dataclass
class DrainReport:
    batches: int = 0
    succeeded: int = 0
    failed: list[str] = field(default_factory=list)


def sqs_event(messages: list[MessageTypeDef], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS poller builds from received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def drain_queue(settings: Settings, handler: Handler | None = None) -> DrainReport:
    """Receive, hand to the handler and delete until the queue is empty."""
    invoke: Handler = handler or lambda_handler
    if not settings.queue_url:
        raise ConfigurationError("no landing queue: run `cafe up` or set CAFE_QUEUE_URL")
    sqs: SQSClient = aws_client(settings, "sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=settings.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    report = DrainReport()
    while True:
        received = sqs.receive_message(
            QueueUrl=settings.queue_url,
            MaxNumberOfMessages=MAX_BATCH,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return report
        report.batches += 1
        response = invoke(sqs_event(received, queue_arn, settings.aws_region), LocalContext())
        failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        done = [message for message in received if message["MessageId"] not in failed]
        for start in range(0, len(done), MAX_BATCH):
            sqs.delete_message_batch(
                QueueUrl=settings.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(done[start : start + MAX_BATCH])
                ],
            )
        report.succeeded += len(done)
        report.failed.extend(sorted(failed))
