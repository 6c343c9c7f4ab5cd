"""Where things are: one resolved view of the environment and the local stack state.

Environment variables win over the stack state file so that pointing at an external
PostgreSQL, or running inside Lambda, is one setting away.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_BUCKET = "cafe-landing-local"
DEFAULT_QUEUE = "cafe-landing-events"
DEFAULT_DLQ = "cafe-landing-events-dlq"
DEFAULT_REGION = "eu-west-2"
# S3 notifications for objects under this prefix reach the loader (local stack and AWS).
LANDING_PREFIX = "landing/"
LOCAL_KEY_VERSION = "local-v1"
DATABASE_NAME = "cafe"
SUPERUSER = "cafe"
REPORTING_ROLE = "cafe_reporting"


def project_root() -> Path:
    """The checkout root: the folder holding pyproject.toml above this package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent, Path.cwd()):
        if (candidate / "pyproject.toml").exists() and (candidate / "dbt_project").exists():
            return candidate
    return here.parent


def state_dir() -> Path:
    return Path(os.environ.get("CAFE_STATE_DIR") or project_root() / ".local")


def state_file() -> Path:
    return state_dir() / "stack.json"


def read_state(path: Path | None = None) -> dict[str, Any]:
    """The stack state written by `cafe up` (at `path`, default `state_file()`).

    An empty dict when no stack was started or the file cannot be read.
    """
    path = path or state_file()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    warehouse: str
    aws_endpoint_url: str | None
    aws_region: str
    landing_bucket: str
    queue_url: str | None
    dlq_url: str | None
    card_key_file: Path
    card_key_secret_arn: str | None
    card_key_version: str
    redshift_workgroup: str | None
    redshift_database: str | None
    redshift_copy_role_arn: str | None
    reporting_password: str | None
    reporting_database_url: str | None

    @property
    def uses_embedded_postgres(self) -> bool:
        return not os.environ.get("CAFE_DATABASE_URL")


def load_settings() -> Settings:
    env = os.environ
    state = read_state()
    pg = state.get("postgres", {})
    aws = state.get("aws", {})
    return Settings(
        database_url=env.get("CAFE_DATABASE_URL") or pg.get("url"),
        warehouse=env.get("CAFE_WAREHOUSE", "postgres"),
        aws_endpoint_url=env.get("CAFE_AWS_ENDPOINT_URL") or aws.get("endpoint_url"),
        aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
        landing_bucket=env.get("CAFE_LANDING_BUCKET") or aws.get("bucket") or DEFAULT_BUCKET,
        queue_url=env.get("CAFE_QUEUE_URL") or aws.get("queue_url"),
        dlq_url=env.get("CAFE_DLQ_URL") or aws.get("dlq_url"),
        card_key_file=Path(env.get("CAFE_CARD_KEY_FILE") or state_dir() / "card_hash.key"),
        card_key_secret_arn=env.get("CAFE_CARD_KEY_SECRET_ARN"),
        card_key_version=env.get("CAFE_CARD_KEY_VERSION", LOCAL_KEY_VERSION),
        redshift_workgroup=env.get("CAFE_REDSHIFT_WORKGROUP"),
        redshift_database=env.get("CAFE_REDSHIFT_DATABASE"),
        redshift_copy_role_arn=env.get("CAFE_REDSHIFT_COPY_ROLE_ARN"),
        reporting_password=env.get("CAFE_REPORTING_PASSWORD") or pg.get("reporting_password"),
        reporting_database_url=env.get("CAFE_REPORTING_DATABASE_URL") or pg.get("reporting_url"),
    )
