"""One loaded and built warehouse for the dbt suite (session-scoped: load + `cafe build` once).

A private database in the session's stack receives, through the loader's own code path,
the three real exports and three branches by five days of generated trade that span the
switch to British Summer Time; `cafe build` (dbt build: models, seeds, data and unit tests,
target `local`) then runs on it once, through the command line, which also keeps the
build's manifest for `--state`. Tests that need their own history (incremental builds, odd
raw rows, a racing load) use `load_files` and dbt on a `fresh_database_url` instead; tests
that change the project work on a copy of it (`copy_project`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from cafe.commands.build import dbt_env, dbt_executable_path
from cafe.dbt_project import dbt_project_dir, dbt_target_dir, kept_state_dir
from cafe.samples import GenerationPlan, iter_generated_files
from loader.hashing import load_card_key
from loader.service import load_path
from loader.settings import Settings
from loader.writers import open_warehouse

# Lines a test wants in the run's final summary (e.g. the dbt-score of the project).
SUMMARY_LINES = pytest.StashKey[list[str]]()

GENERATED_BRANCHES = 3
GENERATED_DAYS = 5
GENERATED_START = date(2024, 3, 29)  # clocks go forward on Sunday 31 March 2024


@dataclasses.dataclass(frozen=True)
class DbtWarehouse:
    """A database with raw data loaded and every dbt model built in it."""

    database_url: str
    settings: Settings
    env: dict[str, str]
    target_dir: Path
    kept_state: Path


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


def run_cafe(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The `cafe` command line against a database of the session's stack; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "cafe.cli", *args],
        env={**os.environ, "CAFE_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )


def copy_project(destination: Path) -> Path:
    """A copy of the dbt project without what dbt or a person wrote into it."""
    ignored = shutil.ignore_patterns("target", "logs", "dbt_packages", "profiles.yml", ".user.yml")
    return Path(shutil.copytree(dbt_project_dir(), destination, ignore=ignored))


def assert_dbt_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@contextlib.contextmanager
def private_database(stack: Settings, prefix: str) -> Iterator[Settings]:
    """A new empty database in the session's stack (readable by the reporting role); dropped."""
    assert stack.database_url
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = with_database(stack.database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(stack.database_url, name)
    try:
        grant_reporting_connect(url)
        yield dataclasses.replace(stack, database_url=url)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def dbt_warehouse(
    stack: Settings, samples_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DbtWarehouse]:
    """Samples + generated trade loaded, `cafe build --threads 4` run once (all tests green)."""
    with private_database(stack, "dbt") as settings:
        assert settings.database_url
        folder = tmp_path_factory.mktemp("dbt_exports")
        for sample in sorted(samples_dir.glob("*.csv")):
            shutil.copy(sample, folder / sample.name)
        plan = GenerationPlan.for_run(GENERATED_BRANCHES, GENERATED_DAYS, GENERATED_START, seed=11)
        list(iter_generated_files(plan, folder))
        load_files(settings, sorted(folder.glob("*.csv")))
        assert_dbt_ok(run_cafe(settings.database_url, "build", "--threads", "4"))
        yield DbtWarehouse(
            settings.database_url,
            settings,
            dbt_env(settings),
            dbt_target_dir(),
            kept_state_dir("local"),
        )


@pytest.fixture
def warehouse_connection(
    dbt_warehouse: DbtWarehouse,
) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    with psycopg.connect(dbt_warehouse.database_url, autocommit=True) as connection:
        yield connection


def add_summary_line(config: pytest.Config, line: str) -> None:
    """Print `line` in the terminal summary at the end of the run (make test's output)."""
    config.stash.setdefault(SUMMARY_LINES, []).append(line)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for line in config.stash.get(SUMMARY_LINES, []):
        terminalreporter.write_line(line)
