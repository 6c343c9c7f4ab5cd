"""The dbt suite's view of the session's built warehouse, and helpers for private builds.

`dbt_warehouse` is `built_warehouse` of tests/conftest.py (loaded once, `cafe build` run
once through the command line, which also keeps the build's manifest for `--state`), as
the dbt tests read it. Tests that need their own history (incremental builds, odd raw rows,
a racing load) use `load_files` and dbt on a `private_database` or `fresh_database_url`
instead; tests that change the project work on a copy of it (`copy_project`).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cafe.commands.build import dbt_env, dbt_executable_path
from cafe.dbt_project import dbt_project_dir
from loader.settings import Settings
from tests.conftest import (
    BuiltWarehouse,
    add_summary_line,
    assert_dbt_ok,
    grant_reporting_connect,
    load_files,
    private_database,
    run_cafe,
    with_database,
)

__all__ = [
    "DbtRunner",
    "DbtWarehouse",
    "add_summary_line",
    "assert_dbt_ok",
    "copy_project",
    "grant_reporting_connect",
    "load_files",
    "private_database",
    "run_cafe",
    "run_dbt_captured",
    "with_database",
]


@dataclasses.dataclass(frozen=True)
class DbtWarehouse:
    """A database with raw data loaded and every dbt model built in it."""

    database_url: str
    settings: Settings
    env: dict[str, str]
    target_dir: Path
    kept_state: Path


DbtRunner = Callable[..., subprocess.CompletedProcess[str]]


def run_dbt_captured(
    settings: Settings, *args: str, project: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run dbt on the project (or a copy) against the settings' database; output captured."""
    return subprocess.run(
        [str(dbt_executable_path()), *args],
        cwd=project or dbt_project_dir(),
        env=dbt_env(settings),
        capture_output=True,
        text=True,
        check=False,
    )


def copy_project(destination: Path) -> Path:
    """A copy of the dbt project without what dbt or a person wrote into it."""
    ignored = shutil.ignore_patterns("target", "logs", "dbt_packages", "profiles.yml", ".user.yml")
    return Path(shutil.copytree(dbt_project_dir(), destination, ignore=ignored))


@pytest.fixture(scope="session")
def dbt_warehouse(built_warehouse: BuiltWarehouse) -> DbtWarehouse:
    """The session's built warehouse: every model built and every test green."""
    return DbtWarehouse(
        built_warehouse.database_url,
        built_warehouse.settings,
        built_warehouse.env,
        built_warehouse.target_dir,
        built_warehouse.kept_state,
    )


@pytest.fixture
def warehouse_connection(
    dbt_warehouse: DbtWarehouse,
) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    with psycopg.connect(dbt_warehouse.database_url, autocommit=True) as connection:
        yield connection
