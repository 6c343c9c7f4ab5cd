"""Plain `dbt` in dbt_project/, as an analytics engineer runs it: only the venv on PATH.

Issue 10's acceptance: `dbt debug && dbt build --select +fct_transactions && dbt source
freshness` succeeds from the project folder with no variable set, lands in schemas of the
user's own (target `dev`, the profile's default) and leaves the shared schemas, which the
session's `cafe build` filled, untouched; `sqlfluff lint` works there too. The project is a
copy, so that the profile `cafe up` would write (`write_local_profile`, pointing at the
session's warehouse) never replaces a developer's own.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from dbt_helpers import DbtWarehouse, copy_project

from cafe.dbt_profile import ProfileOutcome, write_local_profile

SHARED_SCHEMAS = ("staging", "intermediate", "marts", "reporting")
ANALYST = "ann"
OWN_SCHEMAS = (f"dbt_{ANALYST}_staging", f"dbt_{ANALYST}_intermediate", f"dbt_{ANALYST}_marts")


@dataclass(frozen=True)
class Shell:
    """A project folder and the environment of a fresh shell with the venv on PATH."""

    project: Path
    env: dict[str, str]

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(command),
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )


@pytest.fixture(scope="module")
def shell(dbt_warehouse: DbtWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Shell:
    root = tmp_path_factory.mktemp("plain_dbt")
    project = copy_project(root / "dbt_project")
    outcome = write_local_profile(dbt_warehouse.database_url, project / "profiles.yml")
    assert outcome is ProfileOutcome.WRITTEN
    home = root / "home"
    home.mkdir()
    venv_bin = Path(sys.executable).parent
    env = {"PATH": f"{venv_bin}:/usr/bin:/bin", "HOME": str(home), "USER": ANALYST}
    return Shell(project, env)


def _shared_relations(connection: psycopg.Connection) -> dict[str, int]:
    """Every relation of the shared schemas with its oid (a rebuilt relation gets a new one)."""
    rows = connection.execute(
        "select n.nspname || '.' || c.relname, c.oid::bigint from pg_class c"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = any(%s) and c.relkind in ('r', 'v')",
        (list(SHARED_SCHEMAS),),
    ).fetchall()
    return {str(name): int(oid) for name, oid in rows}


def _rows_written_after(connection: psycopg.Connection, transaction: int) -> list[str]:
    tables = connection.execute(
        "select schemaname || '.' || tablename from pg_tables where schemaname = any(%s)",
        (list(SHARED_SCHEMAS),),
    ).fetchall()
    touched = []
    for (table,) in tables:
        found = connection.execute(
            f"select count(*) from {table} where xmin::text::bigint > %s", (transaction,)
        ).fetchone()
        if found and found[0]:
            touched.append(table)
    return touched


@dataclass(frozen=True)
class OwnBuild:
    """What `dbt debug`, `build --select +fct_transactions` and `source freshness` did."""

    results: dict[str, subprocess.CompletedProcess[str]]
    relations_before: dict[str, int]
    relations_after: dict[str, int]
    touched: list[str]
    own_schemas: set[str]
    own_and_shared_transactions: tuple[int, int]


@pytest.fixture(scope="module")
def own_build(shell: Shell, dbt_warehouse: DbtWarehouse) -> OwnBuild:
    with psycopg.connect(dbt_warehouse.database_url, autocommit=True) as connection:
        before = _shared_relations(connection)
        started = connection.execute("select txid_current()").fetchone()
    assert started is not None
    results = {
        "debug": shell.run("dbt", "debug"),
        "build": shell.run("dbt", "build", "--select", "+fct_transactions"),
        "freshness": shell.run("dbt", "source", "freshness"),
    }
    with psycopg.connect(dbt_warehouse.database_url, autocommit=True) as connection:
        after = _shared_relations(connection)
        touched = _rows_written_after(connection, int(started[0]))
        schemas = {
            str(row[0])
            for row in connection.execute(
                "select nspname from pg_namespace where nspname like %s", (f"dbt_{ANALYST}_%",)
            )
        }
        counts = (-1, -1)
        if f"dbt_{ANALYST}_marts" in schemas:
            found = connection.execute(
                f"select (select count(*) from dbt_{ANALYST}_marts.fct_transactions),"
                " (select count(*) from marts.fct_transactions)"
            ).fetchone()
            assert found is not None
            counts = (int(found[0]), int(found[1]))
    return OwnBuild(results, before, after, touched, schemas, counts)


def test_every_command_succeeds_with_only_the_venv_on_path(own_build: OwnBuild) -> None:
    for name, result in own_build.results.items():
        assert result.returncode == 0, f"dbt {name}:\n{result.stdout[-4000:]}{result.stderr}"
    assert "All checks passed" in own_build.results["debug"].stdout
    assert "target='dev'" in own_build.results["build"].stdout


def test_the_build_lands_in_the_users_own_schemas(own_build: OwnBuild) -> None:
    assert set(OWN_SCHEMAS) <= own_build.own_schemas
    own, shared = own_build.own_and_shared_transactions
    assert own == shared > 0


def test_the_shared_schemas_are_untouched(own_build: OwnBuild) -> None:
    assert own_build.relations_after == own_build.relations_before
    assert own_build.touched == []


def _schemas_left(dbt_warehouse: DbtWarehouse) -> list[str]:
    """The user's own schemas and the shared ones that exist."""
    with psycopg.connect(dbt_warehouse.database_url, autocommit=True) as connection:
        left = connection.execute(
            "select nspname from pg_namespace where nspname like %s or nspname = any(%s)",
            (f"dbt_{ANALYST}_%", list(SHARED_SCHEMAS)),
        ).fetchall()
    return sorted(row[0] for row in left)


# The tests below run in this order on purpose. dbt re-reads the whole project when the
# target changes, and so does sqlfluff's dbt templater, which shares dbt's partial-parse
# file: the commands of the user's own target come first, the two of target `local` last.


def test_drop_target_schemas_removes_only_the_users_own(
    own_build: OwnBuild, shell: Shell, dbt_warehouse: DbtWarehouse
) -> None:
    dropped = shell.run("dbt", "run-operation", "drop_target_schemas")
    assert dropped.returncode == 0, dropped.stdout[-3000:]
    assert _schemas_left(dbt_warehouse) == sorted(SHARED_SCHEMAS)


def test_models_pass_sqlfluff_in_a_plain_shell(shell: Shell) -> None:
    # The user's own schemas are gone (the test above): every model renders as on a fresh
    # checkout, its `is_incremental()` blocks left out.
    result = shell.run("sqlfluff", "lint", "models", "--nocolor")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_drop_target_schemas_refuses_the_shared_schemas(
    shell: Shell, dbt_warehouse: DbtWarehouse
) -> None:
    refused = shell.run("dbt", "run-operation", "drop_target_schemas", "--target", "local")
    assert refused.returncode != 0 and "refusing" in refused.stdout
    assert _schemas_left(dbt_warehouse) == sorted(SHARED_SCHEMAS)


def test_incremental_models_pass_sqlfluff_once_built(shell: Shell) -> None:
    """After a build, sqlfluff renders an incremental model with its `is_incremental()`
    blocks: the SQL a developer lints in a working checkout. Target `local` is the
    session's built warehouse, where every incremental model exists."""
    incremental = sorted(
        str(path.relative_to(shell.project))
        for path in (shell.project / "models").rglob("*.sql")
        if "is_incremental()" in path.read_text(encoding="utf-8")
    )
    assert incremental, "no model has an is_incremental() block"
    built = Shell(shell.project, {**shell.env, "CAFE_DBT_TARGET": "local"})
    result = built.run("sqlfluff", "lint", *incremental, "--nocolor")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
