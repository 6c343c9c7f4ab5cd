"""Card-key rotation with continuity, through the Lambda handler, on the real PostgreSQL and
the local S3/SQS/Secrets Manager endpoint (moto):

* a key file: `cafe rotate-key` turns the bare key into a ring without changing a hash, the
  loader links both hashes during the window, `cafe retire-key` leaves no copy of the old
  key in the state folder, and a rotation whose warehouse record failed is recorded by the
  next `cafe rotate-key` instead of rotating twice;
* Secrets Manager: a new version becomes AWSCURRENT, the old one stays AWSPREVIOUS for the
  window (the Lambda reads both), retirement takes the label away (the version is then
  deprecated: Secrets Manager keeps it readable by its id until it prunes, which is
  documented, not hidden); a warm container whose cached ring is older than a rotation
  made elsewhere reads the secret again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cafe.local_queue import LocalContext, sqs_event
from loader.aws import aws_client
from loader.handler import lambda_handler
from loader.hashing import CardKey, hash_card, load_card_keys, refresh_card_keys
from loader.privacy.rotation import retire_key, ring_holder, rotate_key
from loader.privacy.store import PostgresStore
from loader.settings import Settings, load_settings

HEADER = "date,location,name,basket,total,payment_type,card_number"
ANN = "4111111111111111"
BO = "5500005555555559"


def letters() -> str:
    return uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))


def rows(url: str, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(query, params).fetchall()


def deliver(settings: Settings, card: str, day: str) -> str:
    """Put a one-line export under `direct/` and hand its event to the handler."""
    key = f"direct/{letters()}/leeds_{day}_18-00-00.csv"
    body = (
        f"{HEADER}\r\n{day.replace('-', '/')} 09:00,Leeds,N,Regular Tea - 1.20,1.20,CARD,{card}\r\n"
    )
    aws_client(settings, "s3").put_object(
        Bucket=settings.landing_bucket, Key=key, Body=body.encode()
    )
    notification = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventTime": "2025-03-01T09:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": settings.landing_bucket}, "object": {"key": key}},
            }
        ]
    }
    message: Any = {
        "MessageId": str(uuid.uuid4()),
        "ReceiptHandle": "r",
        "Body": json.dumps(notification),
    }
    event = sqs_event([message], "arn:aws:sqs:eu-west-2:000000000000:q", settings.aws_region)
    assert lambda_handler(event, LocalContext()) == {"batchItemFailures": []}
    [(status,)] = rows(
        str(settings.database_url), "select status from raw.loaded_files where source_key = %s", key
    )
    assert status == "loaded"
    return key


def hashes_of(url: str, key: str) -> list[tuple[Any, ...]]:
    return rows(
        url, "select card_hash, card_key_version from raw.transactions where source_key = %s", key
    )


def cafe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cafe.cli", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


# -- a key file ------------------------------------------------------------------------------


@pytest.fixture
def with_key_file(
    stack: Settings, fresh_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, Path]]:
    key_file = tmp_path / "state" / "card_hash.key"
    key_file.parent.mkdir()
    key_file.write_text(os.urandom(32).hex() + "\n")
    key_file.chmod(0o600)
    monkeypatch.setenv("CAFE_DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("CAFE_CARD_KEY_FILE", str(key_file))
    yield load_settings(), key_file


def test_a_key_file_rotates_links_and_retires_without_leaving_a_copy(
    with_key_file: tuple[Settings, Path],
) -> None:
    settings, key_file = with_key_file
    url = str(settings.database_url)
    old_hex = key_file.read_text().strip()
    old = CardKey(bytes.fromhex(old_hex), "local-v1")
    before = deliver(settings, ANN, "01-02-2025")
    assert hashes_of(url, before) == [(hash_card(old, ANN), "local-v1")]

    rotated = cafe("rotate-key", "--overlap-days", "90")
    assert rotated.returncode == 0, rotated.stderr
    assert "local-v2 is current" in " ".join(rotated.stdout.split())
    assert key_file.stat().st_mode & 0o777 == 0o600
    ring = json.loads(key_file.read_text())
    assert (ring["current"], ring["previous"]) == ("local-v2", "local-v1")
    assert ring["keys"]["local-v1"] == old_hex  # the old key, unchanged: no hash changes
    [(version, overlap_ends_at)] = rows(
        url,
        "select key_version, overlap_ends_at from raw.card_keys where overlap_ends_at is not null",
    )
    assert version == "local-v1"
    assert abs(overlap_ends_at - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=5)
    assert rows(url, "select count(*) from raw.card_keys where key_version = 'local-v2'") == [(1,)]
    # A second rotation inside the window is refused: retire the previous key first.
    again = cafe("rotate-key")
    assert again.returncode == 1 and "cafe retire-key local-v1" in again.stderr

    new = CardKey(bytes.fromhex(ring["keys"]["local-v2"]), "local-v2")
    during = deliver(settings, ANN, "01-03-2025")
    assert hashes_of(url, during) == [(hash_card(new, ANN), "local-v2")]
    assert rows(url, "select card_hash, previous_card_hash from raw.card_links") == [
        (hash_card(new, ANN), hash_card(old, ANN))
    ]

    retired = cafe("retire-key", "local-v1")
    assert retired.returncode == 0, retired.stderr
    assert old_hex not in key_file.read_text()
    for path in [*key_file.parent.rglob("*"), *Path(os.environ["CAFE_STATE_DIR"]).glob("*")]:
        if path.is_file():
            content = path.read_bytes()
            assert old_hex.encode() not in content and bytes.fromhex(old_hex) not in content, path
    assert rows(
        url, "select retired_at is not null from raw.card_keys where key_version = 'local-v1'"
    ) == [(True,)]
    after = deliver(settings, BO, "01-04-2025")
    assert hashes_of(url, after) == [(hash_card(new, BO), "local-v2")]
    assert rows(url, "select count(*) from raw.card_links") == [(1,)]  # no link after retirement
    assert [
        action
        for (action,) in rows(url, "select action from raw.privacy_audit order by performed_at")
    ] == [
        "rotate-key",
        "retire-key",
    ]
    assert cafe("retire-key", "local-v1").stdout.split()[-3:] == ["nothing", "to", "do"]


def test_cafe_load_links_a_card_to_its_previous_hash_during_the_window(
    with_key_file: tuple[Settings, Path], tmp_path: Path
) -> None:
    # `cafe load` takes the Lambda's path: hashed with the current key, linked to the old hash.
    settings, key_file = with_key_file
    url = str(settings.database_url)
    assert cafe("rotate-key", "--overlap-days", "90").returncode == 0
    ring = json.loads(key_file.read_text())
    old = CardKey(bytes.fromhex(ring["keys"]["local-v1"]), "local-v1")
    new = CardKey(bytes.fromhex(ring["keys"]["local-v2"]), "local-v2")
    export = tmp_path / "leeds_01-03-2025_18-00-00.csv"
    export.write_text(
        f"{HEADER}\r\n01/03/2025 09:00,Leeds,N,Regular Tea - 1.20,1.20,CARD,{ANN}\r\n"
    )

    loaded = cafe("load", str(export))

    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert rows(url, "select card_hash, card_key_version from raw.transactions") == [
        (hash_card(new, ANN), "local-v2")
    ]
    assert rows(url, "select card_hash, previous_card_hash from raw.card_links") == [
        (hash_card(new, ANN), hash_card(old, ANN))
    ]


def test_an_interrupted_rotation_is_recorded_by_the_next_command_not_repeated(
    with_key_file: tuple[Settings, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, key_file = with_key_file
    url = str(settings.database_url)
    deliver(settings, ANN, "01-02-2025")

    class Unreachable(PostgresStore):
        def execute(self, *args: Any, **kwargs: Any) -> list[int] | None:
            raise psycopg.OperationalError("connection refused")

    with pytest.raises(Exception, match="run `cafe rotate-key` again to record it"):
        rotate_key(Unreachable(url), ring_holder(settings))
    assert json.loads(key_file.read_text())["current"] == "local-v2"
    assert rows(url, "select count(*) from raw.privacy_audit") == [(0,)]
    resumed = rotate_key(PostgresStore(url), ring_holder(settings))
    assert (resumed.version, resumed.resumed) == ("local-v2", True)
    assert json.loads(key_file.read_text())["current"] == "local-v2"  # not rotated twice
    assert rows(
        url, "select key_version, overlap_ends_at is not null from raw.card_keys order by 1"
    ) == [
        ("local-v1", True),
        ("local-v2", False),
    ]


# -- Secrets Manager -------------------------------------------------------------------------


@pytest.fixture
def with_secret(
    stack: Settings, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, str]]:
    client = aws_client(stack, "secretsmanager")
    # As CloudFormation creates it (infra/templates/foundation.yaml).
    document = {"key": os.urandom(32).hex(), "version": "aws-v1"}
    arn = client.create_secret(
        Name=f"cafe-elt-{letters()}/card-hash-key", SecretString=json.dumps(document)
    )["ARN"]
    monkeypatch.setenv("CAFE_DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("CAFE_CARD_KEY_SECRET_ARN", arn)
    refresh_card_keys()
    yield load_settings(), document["key"]
    refresh_card_keys()
    client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def stages(settings: Settings) -> dict[str, list[str]]:
    client = aws_client(settings, "secretsmanager")
    described = client.describe_secret(SecretId=settings.card_key_secret_arn)
    return {version: sorted(labels) for version, labels in described["VersionIdsToStages"].items()}


def test_secrets_manager_versions_carry_the_rotation_and_the_lambda_links(
    with_secret: tuple[Settings, str],
) -> None:
    settings, old_hex = with_secret
    url = str(settings.database_url)
    old = CardKey(bytes.fromhex(old_hex), "aws-v1")
    before = deliver(settings, ANN, "01-02-2025")
    assert hashes_of(url, before) == [(hash_card(old, ANN), "aws-v1")]

    rotation = rotate_key(PostgresStore(url), ring_holder(settings), overlap_days=90)
    assert (rotation.version, rotation.previous_version) == ("aws-v2", "aws-v1")
    assert sorted(stages(settings).values()) == [["AWSCURRENT"], ["AWSPREVIOUS"]]
    keys = load_card_keys(settings)
    assert (keys.current.version, keys.previous and keys.previous.secret.hex()) == (
        "aws-v2",
        old_hex,
    )
    assert keys.linking_key() == keys.previous

    during = deliver(settings, ANN, "01-03-2025")
    assert hashes_of(url, during) == [(hash_card(keys.current, ANN), "aws-v2")]
    assert rows(url, "select card_hash, previous_card_hash from raw.card_links") == [
        (hash_card(keys.current, ANN), hash_card(old, ANN))
    ]

    client = aws_client(settings, "secretsmanager")
    previous_id = client.get_secret_value(
        SecretId=settings.card_key_secret_arn, VersionStage="AWSPREVIOUS"
    )["VersionId"]
    retirement = retire_key(PostgresStore(url), ring_holder(settings), "aws-v1")
    assert retirement.audit_id is not None
    # The label is gone; the version is deprecated (no stage reaches it) ...
    assert stages(settings)[previous_id] == []
    assert load_card_keys(settings).previous is None
    # ... and, as Secrets Manager documents, readable by its id until it is pruned: the
    # loader never asks for it (docs/privacy.md says how IAM keeps it from the loader too).
    deprecated = client.get_secret_value(
        SecretId=settings.card_key_secret_arn, VersionId=previous_id
    )
    assert json.loads(deprecated["SecretString"])["version"] == "aws-v1"
    after = deliver(settings, BO, "01-04-2025")
    assert hashes_of(url, after)[0][1] == "aws-v2"
    assert rows(url, "select count(*) from raw.card_links") == [(1,)]


def test_a_warm_container_reads_the_secret_again_after_a_rotation_made_elsewhere(
    with_secret: tuple[Settings, str],
) -> None:
    settings, _ = with_secret
    url = str(settings.database_url)
    deliver(settings, ANN, "01-02-2025")  # the container caches the aws-v1 ring
    assert load_card_keys(settings).current.version == "aws-v1"
    # An operator rotates from their own machine: this process's cache does not know.
    rotated = cafe("rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    assert load_card_keys(settings).current.version == "aws-v1"  # still cached

    key = deliver(settings, ANN, "01-03-2025")
    [(card_hash, version)] = hashes_of(url, key)
    assert version == "aws-v2"
    assert load_card_keys(settings).current.version == "aws-v2"
    assert rows(url, "select card_hash, previous_key_version from raw.card_links") == [
        (card_hash, "aws-v1")
    ]
    assert rows(url, "select count(*) from raw.loaded_files where status <> 'loaded'") == [(0,)]


def test_a_lost_key_file_starts_a_new_version_only_when_asked(
    with_key_file: tuple[Settings, Path],
) -> None:
    settings, key_file = with_key_file
    url = str(settings.database_url)
    deliver(settings, ANN, "01-02-2025")
    key_file.unlink()

    refused = cafe("rotate-key")
    assert refused.returncode == 1 and "--lost-key" in refused.stderr
    assert "Traceback" not in refused.stderr and not key_file.exists()

    started = cafe("rotate-key", "--lost-key")
    assert started.returncode == 0, started.stderr
    ring = json.loads(key_file.read_text())
    assert (ring["current"], ring["previous"], list(ring["keys"])) == (
        "local-v2",
        None,
        ["local-v2"],
    )
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert rows(
        url, "select key_version, retired_at is not null from raw.card_keys order by 1"
    ) == [
        ("local-v1", True),
        ("local-v2", False),
    ]
    again = deliver(settings, ANN, "01-03-2025")
    assert hashes_of(url, again)[0][1] == "local-v2"
    assert rows(url, "select count(*) from raw.card_links") == [(0,)]
