"""One loaded and built warehouse for the dbt suite (session-scoped: load + `dbt build` once).

A private database in the session's stack receives, through the loader's own code path,
the three real exports and three branches by five days of generated trade that span the
switch to British Summer Time; `dbt build` (models, seeds, data and unit tests) then runs
on it once. Tests that need their own history (incremental builds) use `load_files` and
`dbt` on a `fresh_database_url` instead.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from cafe.commands.build import dbt_env, dbt_executable_path
from cafe.dbt_project import dbt_project_dir
from cafe.samples import GenerationPlan, iter_generated_files
from loader.hashing import load_card_key
from loader.service import load_path
from loader.settings import Settings
from loader.writers import open_warehouse

GENERATED_BRANCHES = 3
GENERATED_DAYS = 5
GENERATED_START = date(2024, 3, 29)  # clocks go forward on Sunday 31 March 2024


@dataclasses.dataclass(frozen=True)
class DbtWarehouse:
    """A database with raw data loaded and every dbt model built in it."""

    database_url: str
    settings: Settings
    env: dict[str, str]


DbtRunner = Callable[..., subprocess.CompletedProcess[str]]


def with_database(url: str, database: str) -> str:
    return url.rsplit("/", 1)[0] + f"/{database}"


def load_files(settings: Settings, files: Sequence[Path]) -> None:
    """Load files as `cafe load` does (same code path as the Lambda)."""
    warehouse = open_warehouse(settings)
    key = load_card_key(settings)
    for path in files:
        load_path(path, path.name, warehouse=warehouse, key=key)


def grant_reporting_connect(url: str) -> None:
    # `cafe up` grants CONNECT on database `cafe` only; a test database needs its own grant.
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("grant connect on database {} to cafe_reporting").format(
                sql.Identifier(url.rsplit("/", 1)[1])
            )
        )


def run_dbt_captured(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run dbt on the project against the settings' database; output captured for asserts."""
    return subprocess.run(
        [str(dbt_executable_path()), *args],
        cwd=dbt_project_dir(),
        env=dbt_env(settings),
        capture_output=True,
        text=True,
        check=False,
    )


def assert_dbt_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.fixture(scope="session")
def dbt_warehouse(
    stack: Settings, database_url: str, samples_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DbtWarehouse]:
    """Samples + generated trade loaded, `dbt build --threads 4` run once (all tests green)."""
    name = f"dbt_{uuid.uuid4().hex[:10]}"
    admin = with_database(database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(database_url, name)
    settings = dataclasses.replace(stack, database_url=url)
    try:
        folder = tmp_path_factory.mktemp("dbt_exports")
        for sample in sorted(samples_dir.glob("*.csv")):
            shutil.copy(sample, folder / sample.name)
        plan = GenerationPlan.for_run(GENERATED_BRANCHES, GENERATED_DAYS, GENERATED_START, seed=11)
        list(iter_generated_files(plan, folder))
        load_files(settings, sorted(folder.glob("*.csv")))
        grant_reporting_connect(url)
        assert_dbt_ok(run_dbt_captured(settings, "build", "--threads", "4"))
        yield DbtWarehouse(url, settings, dbt_env(settings))
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


@pytest.fixture
def warehouse_connection(
    dbt_warehouse: DbtWarehouse,
) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    with psycopg.connect(dbt_warehouse.database_url, autocommit=True) as connection:
        yield connection
