"""Helpers of the dbt suite: the built warehouse's handle, dbt runs on the project or a copy,
and the shared helpers of tests/conftest.py, under one name that cannot be mistaken.

(Test modules import from here, never `from conftest import`: pytest imports every folder's
conftest.py as the module `conftest`, so which one that name meant depended on the order
folders were collected in.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dbt.cli.main import dbtRunner

from bench.bench_dbt import SCHEDULED_BUILD_FLAGS
from cafe.commands.build import dbt_env
from cafe.dbt_project import dbt_project_dir
from loader.settings import Settings
from tests.conftest import (
    add_summary_line,
    assert_dbt_ok,
    grant_reporting_connect,
    load_files,
    private_database,
    run_cafe,
    with_database,
)

__all__ = [
    "AS_SCHEDULED",
    "DbtRunner",
    "DbtWarehouse",
    "add_summary_line",
    "assert_dbt_ok",
    "copy_project",
    "grant_reporting_connect",
    "load_files",
    "manifest_of",
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


# A test's dbt build that checks the data the models make, not their logic, runs what the
# scheduled build runs: without the unit tests and the seeds' own tests (they run in every
# build of the shared warehouse, tests/conftest.py).
AS_SCHEDULED = SCHEDULED_BUILD_FLAGS


def run_dbt_captured(
    settings: Settings, *args: str, project: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run dbt on the project (or a copy) against the settings' database; output captured.

    dbt runs in this process, through its programmatic entry point (`dbtRunner`, as dbt's
    own functional tests run it): a `dbt` subprocess would import dbt again and tear it
    down for every command, about 1.5 s of CPU each time. The environment, the working
    folder and stdout are the subprocess's would-be ones for the length of the command.
    The command line's exit codes: 0 success, 1 a node failed, 2 dbt itself failed.

    Each database gets a target folder of its own: dbt re-reads the whole project when the
    connection differs from its partial-parse file's, so a test that builds one database
    several times (and a copy in between) would otherwise pay a full parse for every run.
    """
    env = dbt_env(settings)
    if settings.database_url:
        env["DBT_TARGET_PATH"] = str(_database_target(env, settings))
    printed = io.StringIO()
    with (
        _IN_PROCESS_DBT,
        _environment(env),
        contextlib.chdir(project or dbt_project_dir()),
        contextlib.redirect_stdout(printed),
    ):
        result = dbtRunner().invoke(list(args))
    returncode = 0 if result.success else (1 if result.exception is None else 2)
    errors = "" if result.exception is None else f"{result.exception}\n"
    return subprocess.CompletedProcess(["dbt", *args], returncode, printed.getvalue(), errors)


# dbt keeps global state for the length of a command (flags, adapters, event loggers):
# one command at a time per process.
_IN_PROCESS_DBT = threading.Lock()


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """os.environ is exactly `env` inside, and what it was again afterwards."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def target_path_of(settings: Settings) -> Path:
    """The target folder of `run_dbt_captured`'s runs on the settings' database."""
    return _database_target(dbt_env(settings), settings)


def _database_target(env: dict[str, str], settings: Settings) -> Path:
    assert settings.database_url
    database = settings.database_url.rsplit("/", 1)[1]
    return Path(env["DBT_TARGET_PATH"]) / "by-database" / database


def manifest_of(settings: Settings) -> dict[str, Any]:
    """The manifest that the last `run_dbt_captured` run on the settings' database wrote."""
    manifest: dict[str, Any] = json.loads((target_path_of(settings) / "manifest.json").read_text())
    return manifest


def copy_project(destination: Path) -> Path:
    """A copy of the dbt project without what dbt or a person wrote into it."""
    ignored = shutil.ignore_patterns("target", "logs", "dbt_packages", "profiles.yml", ".user.yml")
    return Path(shutil.copytree(dbt_project_dir(), destination, ignore=ignored))
