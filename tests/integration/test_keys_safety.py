"""Key safety on the real local stack (issue 9 point 8): a lost or swapped card key never
splits card holders silently.

* `cafe up` and `cafe load` create a key only for a warehouse that holds no card hash and
  no key fingerprint; otherwise they stop with one line that says how to restore the key
  or rotate it;
* a key that is not the one recorded for its version refuses the load: the CLI exits
  non-zero with one line, the Lambda fails the message (so SQS retries it, then the DLQ
  keeps it), the ledger records why, and nothing is loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cafe import stack as local_stack
from cafe.local_queue import LocalContext, sqs_event
from loader.aws import aws_client
from loader.handler import lambda_handler
from loader.settings import Settings, load_settings
from tests.conftest import make_stack_dir

ROTATE_HINT = "cafe rotate-key"


@pytest.fixture
def private_stack(stack: Settings) -> Iterator[Path]:
    """A stack of its own (its `cafe` database is this test's to fill)."""
    root = make_stack_dir("cafe-keys-")
    try:
        yield root
    finally:
        local_stack.down(root)
        shutil.rmtree(root, ignore_errors=True)


def cafe(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("CAFE_DATABASE_URL", "CAFE_CARD_KEY_FILE", "CAFE_CARD_KEY_VERSION")
    }
    env["CAFE_STATE_DIR"] = str(root)
    return subprocess.run(
        [sys.executable, "-m", "cafe.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def count(url: str, query: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute(query).fetchone()
        return int(row[0]) if row else 0


@pytest.mark.slow
def test_a_lost_key_is_never_replaced_where_hashes_exist(
    private_stack: Path, samples_dir: Path
) -> None:
    samples = sorted(samples_dir.glob("*.csv"))
    up = cafe(private_stack, "up")
    assert up.returncode == 0, up.stderr
    key_file = private_stack / "card_hash.key"
    original = key_file.read_bytes()
    assert cafe(private_stack, "load", str(samples[0])).returncode == 0
    url = str(local_stack.read_state(private_stack / "stack.json")["postgres"]["url"])
    loaded = count(url, "select count(*) from raw.transactions where card_hash is not null")
    assert loaded > 0

    key_file.unlink()
    assert_one_clear_line(
        cafe(private_stack, "up"), "is missing", "Restore the key file", ROTATE_HINT
    )
    assert not key_file.exists()
    assert_one_clear_line(cafe(private_stack, "load", str(samples[1])), ROTATE_HINT)
    assert not key_file.exists()

    key_file.write_bytes(original)
    key_file.chmod(0o600)
    assert cafe(private_stack, "up").returncode == 0
    assert cafe(private_stack, "load", str(samples[1])).returncode == 0
    assert key_file.read_bytes() == original


@pytest.mark.slow
def test_another_key_under_a_known_version_refuses_the_load(
    private_stack: Path, samples_dir: Path
) -> None:
    samples = sorted(samples_dir.glob("*.csv"))
    assert cafe(private_stack, "up").returncode == 0
    assert cafe(private_stack, "load", str(samples[0])).returncode == 0
    url = str(local_stack.read_state(private_stack / "stack.json")["postgres"]["url"])
    before = count(url, "select count(*) from raw.transactions")

    (private_stack / "card_hash.key").write_text(os.urandom(32).hex() + "\n")
    assert_one_clear_line(
        cafe(private_stack, "load", str(samples[1])),
        "is not the key this warehouse recorded",
        ROTATE_HINT,
    )
    assert count(url, "select count(*) from raw.transactions") == before
    assert count(url, "select count(*) from raw.card_keys") == 1
    with psycopg.connect(url) as connection:
        [(status, error_text)] = connection.execute(
            "select status, error_text from raw.loaded_files where source_key = %s",
            (samples[1].name,),
        ).fetchall()
    assert status == "failed" and ROTATE_HINT in error_text


@pytest.fixture
def settings(
    stack: Settings, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Settings]:
    monkeypatch.setenv("CAFE_DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("CAFE_CARD_KEY_FILE", str(tmp_path / "key"))
    yield load_settings()


def message_for(settings: Settings, key: str) -> dict[str, Any]:
    notification = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventTime": "2024-02-03T09:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": settings.landing_bucket},
                    "object": {"key": key, "size": 1},
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


def test_the_lambda_fails_the_message_of_a_load_whose_key_does_not_match(
    settings: Settings, samples_dir: Path, tmp_path: Path
) -> None:
    assert settings.database_url
    s3 = aws_client(settings, "s3")
    samples = sorted(samples_dir.glob("*.csv"))
    # Outside the landing prefix: no notification for another test's drain to load.
    keys = [f"direct/keys/{sample.name}" for sample in samples[:2]]
    for sample, key in zip(samples, keys, strict=False):
        s3.put_object(Bucket=settings.landing_bucket, Key=key, Body=sample.read_bytes())
    (tmp_path / "key").write_text(os.urandom(32).hex())
    first = message_for(settings, keys[0])
    assert lambda_handler(first, LocalContext()) == {"batchItemFailures": []}

    (tmp_path / "key").write_text(os.urandom(32).hex())  # swapped, same version label
    second = message_for(settings, keys[1])
    response = lambda_handler(second, LocalContext())
    assert response == {
        "batchItemFailures": [{"itemIdentifier": second["Records"][0]["messageId"]}]
    }
    with psycopg.connect(settings.database_url) as connection:
        assert connection.execute(
            "select count(distinct source_key) from raw.transactions"
        ).fetchone() == (1,)
        [(status, error_text)] = connection.execute(
            "select status, error_text from raw.loaded_files where source_key = %s", (keys[1],)
        ).fetchall()
    assert status == "failed" and ROTATE_HINT in error_text
