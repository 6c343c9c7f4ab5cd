"""The local stack: starts, is reused, survives a crash, stops; the landing bucket notifies."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote_plus

import boto3
import psutil
import psycopg
import pytest

from cafe import stack as local_stack
from loader.aws import aws_client
from loader.settings import Settings
from tests.conftest import make_stack_dir


def _cafe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cafe.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def _project_processes(root: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if str(root) in command:
            found.append(process)
    return found


@pytest.fixture
def private_root() -> Iterator[Path]:
    # Short path: PostgreSQL's Unix socket path must stay under 108 bytes.
    root = make_stack_dir("cafe-stack-")
    yield root
    local_stack.down(root)
    local_stack.down(root / "other")
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_lifecycle_start_reuse_crash_recovery_and_stop(private_root: Path) -> None:
    first = local_stack.up(private_root)
    try:
        assert first.started == ["postgres", "s3+sqs"]
        assert first.created_key
        key_file = private_root / "card_hash.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert len(bytes.fromhex(key_file.read_text().strip())) == 32
        # dbt's sources exist before the first load, so a plain `dbt build` can run.
        state = json.loads((private_root / "stack.json").read_text())
        with psycopg.connect(state["postgres"]["url"]) as conn:
            raw_tables = conn.execute(
                "select to_regclass('raw.loaded_files') is not null,"
                " to_regclass('raw.transactions') is not null,"
                " to_regclass('raw.rejected_rows') is not null"
            ).fetchone()
        assert raw_tables == (True, True, True)

        second = local_stack.up(private_root)
        assert second.started == [] and sorted(second.reused) == ["postgres", "s3+sqs"]
        assert not second.created_key

        # A crashed server leaves postmaster.pid and the socket lock behind.
        pid_file = private_root / "pg" / "data" / "postmaster.pid"
        os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while local_stack.EmbeddedPostgres(local_stack.stack_paths(private_root)).is_running():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert pid_file.exists()

        recovered = local_stack.up(private_root)
        assert recovered.recovered_stale_pid
        assert "postgres" in recovered.started
        state = json.loads((private_root / "stack.json").read_text())
        with psycopg.connect(state["postgres"]["url"]) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        stopped = local_stack.down(private_root)
    assert sorted(stopped) == ["postgres", "s3+sqs"]
    deadline = time.monotonic() + 10
    while _project_processes(private_root):
        assert time.monotonic() < deadline, _project_processes(private_root)
        time.sleep(0.2)
    assert all(not c.running for c in local_stack.status(private_root) if c.name != "card key")


def test_fixed_port_in_use_gives_a_clear_error(private_root: Path, stack: Settings) -> None:
    state = json.loads((Path(os.environ["CAFE_STATE_DIR"]) / "stack.json").read_text())
    busy = str(state["postgres"]["port"])
    os.environ["CAFE_STACK_PG_PORT"] = busy
    try:
        with pytest.raises(local_stack.StackError, match=f"port {busy} .* already in use"):
            local_stack.up(private_root / "other")
    finally:
        os.environ.pop("CAFE_STACK_PG_PORT")
        local_stack.down(private_root / "other")


def test_unusable_folder_gives_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = _cafe("up", env={"CAFE_STATE_DIR": str(blocker / "state")})
    assert result.returncode != 0
    assert "cannot create the stack folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_landing_object_produces_one_message_with_encoded_key(stack: Settings) -> None:
    client_args = {
        "endpoint_url": stack.aws_endpoint_url,
        "region_name": stack.aws_region,
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
    }
    s3 = boto3.client("s3", **client_args)
    sqs = boto3.client("sqs", **client_args)
    assert stack.queue_url
    key = "landing/new branch+1 & co_01-02-2024_09-00-00.csv"
    s3.put_object(Bucket=stack.landing_bucket, Key=key, Body=b"date,location\r\n")
    s3.put_object(Bucket=stack.landing_bucket, Key="landing/notes.txt", Body=b"ignored")
    s3.put_object(Bucket=stack.landing_bucket, Key="elsewhere/x.csv", Body=b"ignored")

    messages = []
    for _ in range(3):  # a few short polls: the notification is delivered asynchronously
        response = sqs.receive_message(
            QueueUrl=stack.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        messages.extend(response.get("Messages", []))
    for message in messages:
        sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])

    # Other tests share the session's queue: look only at events about this test's objects.
    records = {
        unquote_plus(record["s3"]["object"]["key"]): record
        for m in messages
        for record in json.loads(m["Body"]).get("Records", [])
        if "new+branch" in record["s3"]["object"]["key"]
        or unquote_plus(record["s3"]["object"]["key"]) in {"landing/notes.txt", "elsewhere/x.csv"}
    }
    # The prefix decides, not the suffix: the loader records notes.txt as refused itself.
    assert sorted(records) == [
        "landing/new branch+1 & co_01-02-2024_09-00-00.csv",
        "landing/notes.txt",
    ]
    assert all(r["eventName"].startswith("ObjectCreated") for r in records.values())
    encoded = records[key]["s3"]["object"]["key"]
    # S3 form-encodes keys in notifications: spaces become '+', so a literal '+' and '&'
    # must arrive percent-encoded (moto also encodes '/', real S3 does not).
    assert " " not in encoded and "&" not in encoded and "%2B1" in encoded
    assert unquote_plus(encoded) == key
    versioning = s3.get_bucket_versioning(Bucket=stack.landing_bucket)
    assert versioning["Status"] == "Enabled"  # as production's landing bucket
    attributes = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])
    redrive = json.loads(attributes["Attributes"]["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":cafe-landing-events-dlq")
    assert int(redrive["maxReceiveCount"]) == 3


def test_db_url_command_connects(stack: Settings) -> None:
    result = _cafe("db-url")
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("select current_database()").fetchone() == ("cafe",)
    reporting = _cafe("db-url", "--reporting").stdout.strip()
    with psycopg.connect(reporting) as conn:
        assert conn.execute("select current_user").fetchone() == ("cafe_reporting",)


def test_moto_logs_no_request_line(stack: Settings, stack_root: Path) -> None:
    # Every request's path holds an S3 key, and a key may hold a card number.
    marker = f"marker-{uuid.uuid4().hex}"
    s3 = aws_client(stack, "s3")
    s3.put_object(Bucket=stack.landing_bucket, Key=f"elsewhere/{marker}.csv", Body=b"x")
    assert s3.get_object(Bucket=stack.landing_bucket, Key=f"elsewhere/{marker}.csv")
    assert marker not in (stack_root / "moto.log").read_text(errors="replace")
    moto = psutil.Process(int(json.loads((stack_root / "stack.json").read_text())["aws"]["pid"]))
    assert local_stack.MOTO_PROCESS in " ".join(moto.cmdline())


def test_what_moto_prints_is_masked_even_url_encoded() -> None:
    assert (
        local_stack.mask_log_text('"PUT /b/landing/4111%201111%201111%201111.csv HTTP/1.1" 200')
        == '"PUT /b/landing/************1111.csv HTTP/1.1" 200'
    )
    assert local_stack.mask_log_text("no card here: 25-08-2021 09:00") == (
        "no card here: 25-08-2021 09:00"
    )
    target = io.StringIO()
    stream = local_stack._MaskingStream(target)
    stream.write("key landing/4111-1111-")  # a number split across writes
    stream.write("1111-1111.csv\nnext")
    stream.flush()
    assert target.getvalue() == "key landing/************1111.csv\nnext"


def test_the_server_log_settings_hold(stack: Settings) -> None:
    assert stack.database_url
    with psycopg.connect(stack.database_url) as connection:
        for name, value in local_stack.SERVER_LOG_SETTINGS.items():
            [(shown,)] = connection.execute(
                "select setting from pg_settings where name = %s", (name,)
            ).fetchall()
            assert shown == value, name


def test_only_the_servers_own_user_may_open_its_socket(stack: Settings, stack_root: Path) -> None:
    """The socket trusts whoever connects: another local user must not reach it."""
    assert stack.database_url
    with psycopg.connect(stack.database_url) as connection:
        [(shown,)] = connection.execute("show unix_socket_permissions").fetchall()
    assert shown == local_stack.SOCKET_PERMISSIONS
    [socket_file] = (stack_root / "pg" / "run").glob(".s.PGSQL.*[0-9]")
    assert stat.S_IMODE(socket_file.stat().st_mode) == 0o700
    if os.geteuid() != 0:
        return  # switching to another user needs root (as CI and this machine run)
    # The server's own psql, which its system user (hence anyone) may run.
    psql = local_stack.EmbeddedPostgres(local_stack.StackPaths(stack_root)).bin / "psql"
    port = socket_file.name.rsplit(".", 1)[1]
    connect = ["-h", str(socket_file.parent), "-p", port, "-U", "cafe", "-d", "postgres"]
    attempt = subprocess.run(
        [str(psql), *connect, "-Atc", "select current_user"],
        user="nobody",
        capture_output=True,
        text=True,
        check=False,
    )
    assert attempt.returncode != 0 and "Permission denied" in attempt.stderr, attempt
