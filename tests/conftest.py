"""Shared fixtures: one real local stack (embedded PostgreSQL + moto S3/SQS) per test session.

The stack lives in a private state folder so that tests never touch the developer's own
`.local/` stack, and the environment is scrubbed of settings that would point the code
under test somewhere else.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cafe import stack as local_stack
from loader.settings import Settings, load_settings

# A checked-in copy of the real exports in ../shared/samples, so a fresh clone has them.
SAMPLES_DIR = Path(__file__).resolve().parent / "fixtures" / "samples"

_SCRUBBED = (
    "CAFE_DATABASE_URL",
    "CAFE_WAREHOUSE",
    "CAFE_AWS_ENDPOINT_URL",
    "CAFE_LANDING_BUCKET",
    "CAFE_QUEUE_URL",
    "CAFE_DLQ_URL",
    "CAFE_CARD_KEY_FILE",
    "CAFE_CARD_KEY_SECRET_ARN",
    "CAFE_CARD_KEY_VERSION",
    "CAFE_REPORTING_PASSWORD",
    "CAFE_REPORTING_DATABASE_URL",
    "CAFE_STACK_PG_PORT",
    "CAFE_STACK_AWS_PORT",
    "CAFE_DBT_TARGET",
)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real exports (three branch files)."""
    return SAMPLES_DIR


def make_stack_dir(prefix: str) -> Path:
    """A folder for a test stack outside pytest's temporary tree.

    PostgreSQL runs as another system user when tests run as root, and every pytest
    session resets `/tmp/pytest-of-<user>` to mode 0700 (and prunes old runs), which would
    pull the data folder from under a server that another session is still using.
    """
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def stack_root() -> Iterator[Path]:
    root = make_stack_dir("cafe-test-stack-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(stack_root: Path) -> Iterator[Settings]:
    """A running local stack for the whole session; `load_settings()` resolves to it."""
    saved = {name: os.environ.pop(name) for name in _SCRUBBED if name in os.environ}
    previous_state_dir = os.environ.get("CAFE_STATE_DIR")
    os.environ["CAFE_STATE_DIR"] = str(stack_root)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    try:
        local_stack.up(stack_root)
        yield load_settings()
    finally:
        local_stack.down(stack_root)
        if previous_state_dir is None:
            os.environ.pop("CAFE_STATE_DIR", None)
        else:
            os.environ["CAFE_STATE_DIR"] = previous_state_dir
        os.environ.update(saved)


@pytest.fixture(scope="session")
def database_url(stack: Settings) -> str:
    """Superuser URL of the stack's `cafe` database."""
    assert stack.database_url
    return stack.database_url


def _with_database(url: str, database: str) -> str:
    return url.rsplit("/", 1)[0] + f"/{database}"


@pytest.fixture
def fresh_database_url(database_url: str) -> Iterator[str]:
    """A brand-new empty database for one test; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = _with_database(database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield _with_database(database_url, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
