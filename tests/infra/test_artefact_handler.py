"""What would ship is what works: the built Lambda zip, alone in a clean venv, loads a file.

The artefact is extracted into an empty folder and run by a brand-new virtual
environment of the Lambda runtime's Python version (python3.12 where this machine has
one), from a scratch working directory, with only that folder and a second one holding
boto3 and botocore on PYTHONPATH, in that order, as the Lambda runtime lays out /var/task
and /var/runtime: nothing of the checkout or the project venv is importable, and the
artefact must work with the runtime's boto3 since it ships none. The event is the real S3
notification the local stack's bucket sent to its queue, wrapped as Lambda's SQS poller
wraps it; the handler writes to a fresh PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from infra_helpers import (
    built_lambda_artefact,
    lambda_python,
    lambda_runtime_libraries,
    package_module,
)

from cafe.local_queue import sqs_event
from loader.settings import Settings

pytestmark = pytest.mark.slow  # builds the Lambda artefact and a clean venv

SAMPLE = "chesterfield_25-08-2021_09-00-00.csv"

RUNNER = """
import importlib.util, json, sys, time
from pathlib import Path
import boto3, loader
assert Path(loader.__file__).is_relative_to(sys.argv[1]), loader.__file__
assert Path(boto3.__file__).is_relative_to(sys.argv[2]), boto3.__file__
assert importlib.util.find_spec("cafe") is None, "the command line is not shipped"
print("PYTHON " + ".".join(map(str, sys.version_info[:2])))
from loader.handler import lambda_handler

class Context:
    # Lambda's context object, with the template's 300 s timeout counting down.
    function_name = "cafe-elt-loader"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-2:000000000000:function:cafe-elt-loader"
    aws_request_id = "artefact-test"
    deadline = time.monotonic() + 300

    def get_remaining_time_in_millis(self):
        return max(0, int((self.deadline - time.monotonic()) * 1000))

result = lambda_handler(json.load(sys.stdin), Context())
print("RESULT " + json.dumps(result))
"""


@pytest.fixture(scope="module")
def clean_runtime(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(interpreter of an empty venv, the extracted artefact, the runtime's libraries)."""
    root = tmp_path_factory.mktemp("runtime")
    subprocess.run(
        [str(lambda_python()), "-m", "venv", "--without-pip", str(root / "venv")], check=True
    )
    task = root / "task"  # where Lambda extracts the code: /var/task
    with zipfile.ZipFile(built_lambda_artefact().path) as archive:
        archive.extractall(task)
    return root / "venv" / "bin" / "python", task, lambda_runtime_libraries()


def receive_event_for(settings: Settings, token: str) -> dict[str, Any]:
    """The SQS event of the notification whose (URL-encoded) key contains `token`."""
    sqs = boto3.client(
        "sqs", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region
    )
    assert settings.queue_url
    for _ in range(20):
        response = sqs.receive_message(
            QueueUrl=settings.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        mine = [m for m in response.get("Messages", []) if token in m["Body"]]
        if mine:
            arn = sqs.get_queue_attributes(
                QueueUrl=settings.queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            event: dict[str, Any] = sqs_event(mine, arn, settings.aws_region)
            return event
    raise AssertionError(f"no notification for a key with {token} arrived")


def test_packaged_handler_loads_a_real_export_in_a_clean_venv(
    stack: Settings,
    fresh_database_url: str,
    samples_dir: Path,
    clean_runtime: tuple[Path, Path, Path],
    tmp_path: Path,
) -> None:
    python, task, runtime = clean_runtime
    sample = samples_dir / SAMPLE
    token = f"artefact-{uuid.uuid4().hex[:12]}"
    key = f"landing/{token}/{SAMPLE}"
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint_url, region_name=stack.aws_region)
    s3.put_object(Bucket=stack.landing_bucket, Key=key, Body=sample.read_bytes())
    event = receive_event_for(stack, token)

    # The key `cafe up` would have created: the loader never mints one itself.
    key_file = tmp_path / "card_hash.key"
    key_file.write_text(secrets.token_hex(32) + "\n")
    key_file.chmod(0o600)
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": f"{task}:{runtime}",
        "PYTHONNOUSERSITE": "1",
        "CAFE_STATE_DIR": str(tmp_path / "no-stack"),
        "CAFE_WAREHOUSE": "postgres",
        "CAFE_DATABASE_URL": fresh_database_url,
        "CAFE_AWS_ENDPOINT_URL": str(stack.aws_endpoint_url),
        "CAFE_LANDING_BUCKET": stack.landing_bucket,
        "CAFE_CARD_KEY_FILE": str(key_file),
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": stack.aws_region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "cafe-loader",
        "POWERTOOLS_METRICS_NAMESPACE": "CafeElt",
    }
    completed = subprocess.run(
        [str(python), "-c", RUNNER, str(task), str(runtime)],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    if lambda_python() != Path(sys.executable):  # the runtime's version was found here
        assert f"PYTHON {package_module().LAMBDA_PYTHON}" in completed.stdout.splitlines()
    (result_line,) = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert json.loads(result_line.removeprefix("RESULT ")) == {"batchItemFailures": []}, (
        completed.stdout[-3000:]
    )

    data_lines = [line for line in sample.read_bytes().splitlines()[1:] if line.strip()]
    with psycopg.connect(fresh_database_url) as connection:
        ledger = connection.execute(
            "select status, rows_read, rows_loaded, rows_rejected from raw.loaded_files"
            " where source_key = %s",
            (key,),
        ).fetchall()
        loaded = connection.execute(
            "select count(*), count(distinct line_number) from raw.transactions"
            " where source_key = %s",
            (key,),
        ).fetchone()
    ((status, read, loaded_count, rejected),) = ledger
    assert status == "loaded"
    assert read == len(data_lines) == loaded_count + rejected
    assert loaded == (loaded_count, loaded_count) and loaded_count > 0

    # The alarms read the handler's EMF metrics from its log output.
    emf = [json.loads(line) for line in completed.stdout.splitlines() if '"_aws"' in line]
    published = {
        metric["Name"]
        for document in emf
        for directive in document["_aws"]["CloudWatchMetrics"]
        if directive["Namespace"] == "CafeElt"
        for metric in directive["Metrics"]
    }
    assert {"FilesLoaded", "RowsLoaded"} <= published
    assert os.environ.get("CAFE_DATABASE_URL") != fresh_database_url  # the test env is untouched
