"""One warehouse with marts for the whole dashboards suite (session-scoped: load + dbt once).

A private database in the session's stack receives, through the loader's own code path:
the three real exports, three weeks of generated trade for three branches (spanning the
switch to British Summer Time, so UTC and café-local days differ), one file with broken
lines and one file that is not text. dbt then builds the marts in it.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cafe.samples import GenerationPlan, iter_generated_files
from loader.settings import Settings

GENERATED_BRANCHES = 3
GENERATED_DAYS = 21
GENERATED_START = date(2024, 3, 18)  # clocks go forward on 31 March 2024
BROKEN_BRANCH = "Whitby"
BROKEN_LINES = 12  # above the alert threshold of 10


@dataclasses.dataclass(frozen=True)
class Marts:
    database_url: str
    settings: Settings
    broken_lines: int
    broken_branch: str


def _with_database(url: str, database: str) -> str:
    return url.rsplit("/", 1)[0] + f"/{database}"


def _broken_file(folder: Path) -> Path:
    """A Whitby export with good lines and BROKEN_LINES lines the loader must reject."""
    header = "date,location,name,basket,total,payment_type,card_number"
    good = '12/04/2024 10:15,Whitby,Ann Lee,"Large Latte - 2.45",2.45,CASH,'
    bad = [
        f'31/02/2024 10:{i:02d},Whitby,Ann Lee,"Large Latte - 2.45",2.45,CASH,' for i in range(6)
    ]
    bad += [
        f'13/04/2024 11:{i:02d},Whitby,Ann Lee,"Large Latte - 2.45",2.45,BITCOIN,' for i in range(6)
    ]
    assert len(bad) == BROKEN_LINES
    path = folder / "whitby_13-04-2024_09-00-00.csv"
    path.write_bytes(("\r\n".join([header, good, *bad]) + "\r\n").encode())
    return path


def _unreadable_file(folder: Path) -> Path:
    path = folder / "leeds_14-04-2024_09-00-00.csv"
    path.write_bytes(bytes(range(256)) * 4)
    return path


def _load(settings: Settings, files: list[Path]) -> None:
    from loader.hashing import load_card_key
    from loader.service import load_path
    from loader.writers import open_warehouse

    warehouse = open_warehouse(settings)
    key = load_card_key(settings)
    for path in files:
        load_path(path, path.name, warehouse=warehouse, key=key)


def _grant_reporting_role(url: str) -> None:
    # A brand-new database is not covered by `cafe up`'s provisioning of the `cafe` database.
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("grant connect on database {} to cafe_reporting").format(
                sql.Identifier(url.rsplit("/", 1)[1])
            )
        )


def _build_marts(settings: Settings) -> None:
    from cafe.commands.build import run_dbt

    exit_code = run_dbt(["build", "--exclude-resource-type", "test", "unit_test"], settings)
    assert not exit_code, f"dbt build failed ({exit_code})"


@pytest.fixture(scope="session")
def marts(
    stack: Settings, database_url: str, samples_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Marts]:
    name = f"dashboards_{uuid.uuid4().hex[:10]}"
    admin = _with_database(database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = _with_database(database_url, name)
    reporting_url = (
        _with_database(stack.reporting_database_url, name) if stack.reporting_database_url else None
    )
    settings = dataclasses.replace(stack, database_url=url, reporting_database_url=reporting_url)
    try:
        folder = tmp_path_factory.mktemp("exports")
        for sample in sorted(samples_dir.glob("*.csv")):
            shutil.copy(sample, folder / sample.name)
        plan = GenerationPlan.for_run(GENERATED_BRANCHES, GENERATED_DAYS, GENERATED_START, seed=7)
        generated = [g.path for g in iter_generated_files(plan, folder)]
        files = sorted(folder.glob("*.csv"))
        assert len(generated) == GENERATED_BRANCHES * GENERATED_DAYS
        _load(settings, [*files, _broken_file(folder), _unreadable_file(folder)])
        _grant_reporting_role(url)
        _build_marts(settings)
        yield Marts(url, settings, BROKEN_LINES, BROKEN_BRANCH)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def marts_connection(marts: Marts) -> Iterator[psycopg.Connection[object]]:
    with psycopg.connect(marts.database_url, autocommit=True) as connection:
        yield connection
