"""The Lambda entry point: a thin adapter from S3/SQS events to `loader.service`.

Each SQS message is its own unit of retry: a file that fails is reported in
`batchItemFailures` (the event source mapping must enable `ReportBatchItemFailures`), so
SQS redelivers that message alone and, after `maxReceiveCount` tries, moves it to the
dead-letter queue. Duplicates, stale versions and refused files are successes: retrying
cannot change them, and the ledger already says what happened. A direct S3 invocation
(no SQS) raises instead, which makes Lambda's asynchronous retry policy apply.

The object is streamed from S3 into a temporary file (in /tmp on Lambda), never held in
memory whole: the loader needs a seekable file to checksum it before parsing. When the
event names an object version, that version is fetched (a late event of an older version
must not load the newest bytes under its name); its LastModified, version id and the
event's sequencer go with it to the ledger, which orders versions by them.

Deadline: the invocation's remaining time (`context.get_remaining_time_in_millis()`)
bounds every wait of the writer, less `ANSWER_RESERVE_SECONDS` kept to record a failure
and answer. A file is not started with less than `MIN_SECONDS_TO_START` of work left: its
message is reported as a failure, unstarted, and SQS delivers it again.

Scheduled tasks: an event `{"task": "retention"}` (the daily EventBridge schedule) runs name
retention (`loader.privacy.retention`, `CAFE_NAME_RETENTION_DAYS`) instead of loading.

Card keys: the key ring (`loader.hashing.load_card_keys`) gives the current key and, during
a rotation's overlap window, the previous one, which hashes every card too so the two hashes
can be linked. A warm container keeps the ring it read for a few minutes; when the
warehouse shows a rotation newer than that ring (`CardKeySuperseded`), the ring is read
again and the file loaded once more.

Keys reach the log only through the masker (`loader.service.stored_key`), as they reach
the ledger: a card number typed into a file name never leaves the landing bucket. The AWS
SDK's own debug logs quote every request's path and body, so their loggers are held above
that level (`QUIET_LOGGERS`) whatever the root logger's level.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from loader.aws import aws_client
from loader.batches import Deadline, Warehouse
from loader.errors import CafeError
from loader.events import Message, ObjectRef, parse_event
from loader.filenames import parse_export_name
from loader.hashing import CardKeys, CardKeySuperseded, load_card_keys, refresh_card_keys
from loader.ledger import LoadResult, SourceFacts, Status
from loader.privacy.retention import apply_retention, retention_days_from_environment
from loader.privacy.store import open_sql_store
from loader.service import error_text_of, load_file, stored_key
from loader.settings import Settings, load_settings
from loader.writers import open_warehouse

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SERVICE_NAME = "cafe-loader"
METRICS_NAMESPACE = "CafeElt"
# Kept back from the invocation's remaining time to record a failure and answer.
ANSWER_RESERVE_SECONDS = 10.0
# Less work time than this left: a file is not started, its message is retried later.
MIN_SECONDS_TO_START = 15.0
_DOWNLOAD_CHUNK_BYTES = 1 << 20
# Loggers whose lower levels print object keys (request paths, bodies); urllib3's warnings
# quote the path of a retried request too.
QUIET_LOGGERS = {
    "boto3": logging.INFO,
    "botocore": logging.INFO,
    "s3transfer": logging.INFO,
    "urllib3": logging.ERROR,
}
for _name, _level in QUIET_LOGGERS.items():
    logging.getLogger(_name).setLevel(_level)

# A test event or an ObjectRemoved notification publishes no metric; that is expected.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)


class LoadFailed(CafeError):
    """At least one object of a direct S3 invocation failed to load."""


class UnknownTask(CafeError):
    """A scheduled invocation named a task the loader does not have."""


RETENTION_TASK = "retention"


def load_object(
    s3: S3Client, ref: ObjectRef, *, settings: Settings, warehouse: Warehouse
) -> LoadResult:
    """Download one object (the event's version of it) to a temporary file and load it."""
    with tempfile.TemporaryFile() as spool:
        if ref.version_id:
            response = s3.get_object(Bucket=ref.bucket, Key=ref.key, VersionId=ref.version_id)
        else:
            response = s3.get_object(Bucket=ref.bucket, Key=ref.key)
        shutil.copyfileobj(response["Body"], spool, _DOWNLOAD_CHUNK_BYTES)
        spool.seek(0)
        source = SourceFacts(
            modified_at=response.get("LastModified") or ref.event_time,
            sequencer=ref.sequencer,
            version_id=response.get("VersionId") or ref.version_id,
        )
        keys = load_card_keys(settings)
        try:
            return _load_spool(spool, ref, warehouse, keys, source)
        except CardKeySuperseded:
            # A warm container's cached ring is older than a rotation: read it again, once.
            refresh_card_keys()
            spool.seek(0)
            return _load_spool(spool, ref, warehouse, load_card_keys(settings), source)


def _load_spool(
    spool: IO[bytes], ref: ObjectRef, warehouse: Warehouse, keys: CardKeys, source: SourceFacts
) -> LoadResult:
    return load_file(
        spool,
        ref.key,
        warehouse=warehouse,
        key=keys.current,
        link_key=keys.linking_key(),
        source=source,
    )


def _record_branch_file(source_key: str) -> None:
    """FilesLoaded per branch: the "no file from a branch in 26 hours" alarms watch it.

    A metric of its own, because a dimension added to the shared `metrics` object would
    split every other metric of the invocation by branch too.
    """
    export = parse_export_name(source_key)
    if export is None:
        return
    with single_metric(
        name="FilesLoaded",
        unit=MetricUnit.Count,
        value=1,
        namespace=METRICS_NAMESPACE,
        default_dimensions={"service": SERVICE_NAME},
    ) as metric:
        metric.add_dimension(name="branch", value=export.branch_name.lower())


def _record_metrics(result: LoadResult) -> None:
    if result.status in (Status.LOADED, Status.REPLACED):
        metrics.add_metric(name="FilesLoaded", unit=MetricUnit.Count, value=1)
        _record_branch_file(result.source_key)
        metrics.add_metric(name="RowsLoaded", unit=MetricUnit.Count, value=result.counts.loaded)
        metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=result.counts.rejected)
    elif result.status is Status.DUPLICATE:
        metrics.add_metric(name="DuplicatesSkipped", unit=MetricUnit.Count, value=1)
    elif result.status is Status.STALE:
        metrics.add_metric(name="StaleVersionsSkipped", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="LoadErrors", unit=MetricUnit.Count, value=1)
    metrics.add_metric(
        name="LoadDuration",
        unit=MetricUnit.Milliseconds,
        value=duration_milliseconds(result.seconds),
    )


def duration_milliseconds(seconds: float) -> float:
    """`seconds` in milliseconds, to the microsecond.

    Rounded, because float arithmetic writes `7.822000000000001`: sixteen digits joined by a
    dot, which now and then pass the Luhn check, and then every log and metric scan rightly
    stops at what looks like a card number in the loader's output.
    """
    return round(seconds * 1000, 3)


def _process_message(
    message: Message, settings: Settings, warehouse: Warehouse, deadline: Deadline
) -> bool:
    """Load every object of one message; True when the message needs no retry."""
    if message.error is not None:
        logger.error(
            "unreadable message",
            extra={"message_id": message.message_id, "error": stored_key(message.error)},
        )
        metrics.add_metric(name="LoadErrors", unit=MetricUnit.Count, value=1)
        return False
    ok = True
    s3: S3Client = aws_client(settings, "s3")
    for ref in message.objects:
        left = deadline.remaining_for_work()
        if left is not None and left < MIN_SECONDS_TO_START:
            logger.warning(
                "not started: too close to the invocation's deadline",
                extra={
                    "bucket": ref.bucket,
                    "key": stored_key(ref.key),
                    "seconds_left": round(left, 3),
                },
            )
            metrics.add_metric(name="LoadsDeferred", unit=MetricUnit.Count, value=1)
            return False
        started = time.monotonic()
        try:
            result = load_object(s3, ref, settings=settings, warehouse=warehouse)
        except Exception as error:  # the object could not be fetched or recorded
            ok = False
            metrics.add_metric(name="LoadErrors", unit=MetricUnit.Count, value=1)
            logger.error(
                "load failed",
                extra={
                    "bucket": ref.bucket,
                    "key": stored_key(ref.key),
                    "error": error_text_of(error),
                    "seconds": round(time.monotonic() - started, 3),
                },
            )
            continue
        _record_metrics(result)
        ok = ok and result.status.is_success
        logger.info(
            "file processed",
            extra={
                "bucket": ref.bucket,
                "key": result.source_key,
                "load_id": result.load_id,
                "status": result.status.value,
                "rows_read": result.counts.read,
                "rows_loaded": result.counts.loaded,
                "rows_rejected": result.counts.rejected,
                "seconds": round(result.seconds, 3),
                "error": result.error_text,
                "duplicate_of": result.duplicate_of,
            },
        )
    return ok


def run_task(task: object, settings: Settings) -> dict[str, Any]:
    """A scheduled task (`{"task": ...}`): only `retention` exists.

    Name retention (`loader.privacy.retention`) with `CAFE_NAME_RETENTION_DAYS`; what it
    cleared goes to the log and the metrics as counts. Raises for anything else, so that the
    schedule's invocation fails visibly instead of doing nothing.
    """
    if task != RETENTION_TASK:
        raise UnknownTask(f"unknown task {stored_key(str(task))!r}: the loader runs 'retention'")
    run = apply_retention(open_sql_store(settings), retention_days_from_environment())
    metrics.add_metric(name="NamesCleared", unit=MetricUnit.Count, value=run.counts.transactions)
    metrics.add_metric(
        name="RefusedLinesCleared", unit=MetricUnit.Count, value=run.counts.rejected_rows
    )
    logger.info(
        "retention done",
        extra={
            "audit_id": run.audit_id,
            "retention_days": run.cutoff.days,
            "names_cleared": run.counts.transactions,
            "refused_lines_cleared": run.counts.rejected_rows,
            "files_left_busy": run.files_left_busy,
        },
    )
    return {
        "task": RETENTION_TASK,
        "audit_id": run.audit_id,
        "names_cleared": run.counts.transactions,
        "refused_lines_cleared": run.counts.rejected_rows,
        "files_left_busy": run.files_left_busy,
    }


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Load the files an S3 (or SQS-wrapped S3) event names; report per-message failures.

    An event `{"task": "retention"}` (the daily schedule) runs name retention instead.
    """
    settings = load_settings()
    if "task" in event:
        return run_task(event["task"], settings)
    messages = parse_event(event)
    if not any(message.objects or message.error for message in messages):
        logger.info("nothing to load (test event or no created objects)")
        return {"batchItemFailures": []}
    deadline = Deadline.counting_down(
        lambda: context.get_remaining_time_in_millis() / 1000,
        reserve_seconds=ANSWER_RESERVE_SECONDS,
    )
    warehouse = open_warehouse(settings, deadline=deadline)
    failures = [
        message.message_id
        for message in messages
        if not _process_message(message, settings, warehouse, deadline)
    ]
    if any(message_id is None for message_id in failures):
        raise LoadFailed("a file of the S3 event could not be loaded; see the log")
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}
