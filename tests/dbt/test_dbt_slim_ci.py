"""Slim CI: `dbt build --select state:modified+ --defer --state <kept>` builds what changed.

The session's `cafe build` (target `local`) kept its manifest where `--state` finds it
(`<state>/dbt/state/local`). A CI run (target `ci`, schemas named for the run) on a copy
of the project then builds nothing when nothing changed, and exactly a changed model and
its descendants when one changes, reading every other model from the shared schemas
(`--defer`). The run's schemas are dropped afterwards (the session's database goes at the
end of the session whatever happens).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from dbt_helpers import DbtWarehouse, copy_project

from cafe.commands.build import dbt_executable_path

CHANGED_MODEL = "dim_products"


@dataclass(frozen=True)
class CiRun:
    project: Path
    env: dict[str, str]
    schema_prefix: str
    target_dir: Path

    def dbt(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [dbt_executable_path(), *args, "--target", "ci"],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )

    def slim_build(self, state: Path) -> subprocess.CompletedProcess[str]:
        return self.dbt("build", "--select", "state:modified+", "--defer", "--state", str(state))

    def built_models(self) -> set[str]:
        results = json.loads((self.target_dir / "run_results.json").read_text())["results"]
        return {
            result["unique_id"].split(".")[2]
            for result in results
            if result["unique_id"].startswith("model.") and result["status"] == "success"
        }


@pytest.fixture(scope="module")
def ci_run(dbt_warehouse: DbtWarehouse, tmp_path_factory: pytest.TempPathFactory) -> CiRun:
    root = tmp_path_factory.mktemp("slim_ci")
    run_id = f"t{uuid.uuid4().hex[:8]}"
    env = {
        **dbt_warehouse.env,
        "CAFE_DBT_CI_RUN": run_id,
        "DBT_TARGET_PATH": str(root / "target"),
        "DBT_LOG_PATH": str(root / "logs"),
    }
    return CiRun(copy_project(root / "dbt_project"), env, f"ci_{run_id}", root / "target")


def _schemas_of(database_url: str, prefix: str) -> dict[str, set[str]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema like %s",
            (f"{prefix}\\_%",),
        ).fetchall()
    found: dict[str, set[str]] = {}
    for schema, table in rows:
        found.setdefault(str(schema)[len(prefix) + 1 :], set()).add(str(table))
    return found


def test_cafe_build_kept_the_local_manifest(dbt_warehouse: DbtWarehouse) -> None:
    manifest = json.loads((dbt_warehouse.kept_state / "manifest.json").read_text())
    assert manifest["metadata"]["adapter_type"] == "postgres"
    assert "model.cafe_elt.fct_transactions" in manifest["nodes"]
    assert (dbt_warehouse.kept_state / "run_results.json").exists()


def test_without_a_change_nothing_is_built(ci_run: CiRun, dbt_warehouse: DbtWarehouse) -> None:
    result = ci_run.slim_build(dbt_warehouse.kept_state)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Nothing to do" in result.stdout
    assert _schemas_of(dbt_warehouse.database_url, ci_run.schema_prefix) == {}


def _descendant_models(manifest: dict[str, object], unique_id: str) -> set[str]:
    children = manifest["child_map"]
    assert isinstance(children, dict)
    found: set[str] = set()
    pending = [unique_id]
    while pending:
        for child in children[pending.pop()]:
            if child.startswith("model.") and child not in found:
                found.add(child)
                pending.append(child)
    return {child.split(".")[2] for child in found}


def test_a_changed_model_builds_with_its_children_only(
    ci_run: CiRun, dbt_warehouse: DbtWarehouse
) -> None:
    model = next((ci_run.project / "models").rglob(f"{CHANGED_MODEL}.sql"))
    model.write_text(model.read_text() + "-- changed in a pull request\n")

    result = ci_run.slim_build(dbt_warehouse.kept_state)
    assert result.returncode == 0, result.stdout[-6000:]

    manifest = json.loads((ci_run.target_dir / "manifest.json").read_text())
    expected = {CHANGED_MODEL} | _descendant_models(manifest, f"model.cafe_elt.{CHANGED_MODEL}")
    assert "rpt_product_sales_daily" in expected
    assert ci_run.built_models() == expected
    # Only those relations exist in the run's schemas: everything else came from `local`.
    schemas = _schemas_of(dbt_warehouse.database_url, ci_run.schema_prefix)
    built_tables = set().union(*schemas.values())
    assert expected <= built_tables
    assert not {"fct_transactions", "dim_branches", "dim_dates"} & built_tables

    # The deferred mart equals the shared one: its unchanged parents were read from there.
    with psycopg.connect(dbt_warehouse.database_url, autocommit=True) as connection:
        for left, right in (
            (f"{ci_run.schema_prefix}_reporting", "reporting"),
            ("reporting", f"{ci_run.schema_prefix}_reporting"),
        ):
            difference = connection.execute(
                f"select count(*) from (select * from {left}.rpt_product_sales_daily"
                f" except all select * from {right}.rpt_product_sales_daily) as d"
            ).fetchone()
            assert difference == (0,), f"{left} has rows {right} lacks"


def test_the_runs_schemas_are_dropped_afterwards(
    ci_run: CiRun, dbt_warehouse: DbtWarehouse
) -> None:
    dropped = ci_run.dbt("run-operation", "drop_target_schemas")
    assert dropped.returncode == 0, dropped.stdout[-3000:]
    assert _schemas_of(dbt_warehouse.database_url, ci_run.schema_prefix) == {}
    with psycopg.connect(dbt_warehouse.database_url, autocommit=True) as connection:
        shared = connection.execute("select count(*) from reporting.rpt_product_sales_daily")
        assert (shared.fetchone() or (0,))[0] > 0
