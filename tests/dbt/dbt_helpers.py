"""Helpers of the dbt suite: the built warehouse's handle, dbt runs on the project or a copy,
and the shared helpers of tests/conftest.py, under one name that cannot be mistaken.

(Test modules import from here, never `from conftest import`: pytest imports every folder's
conftest.py as the module `conftest`, so which one that name meant depended on the order
folders were collected in.)
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from cafe.commands.build import dbt_env, dbt_executable_path
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
