"""The dbt project compiles for Redshift, offline, into SQL that Redshift can run.

No Redshift is reachable from here, so dbt compiles against the `prod` target (Redshift) of
profiles.example.yml with a dummy host on a closed loopback port: any model that queried the
warehouse while compiling would fail with "connection refused". The one question dbt must
ask, `is_incremental()`'s "does the table exist?", is answered by a stand-in for
`RedshiftAdapter.get_relation` in the dbt subprocess: "no" for the full-build SQL, "yes" for
the incremental SQL, so both branches of every incremental model are compiled and checked.

Every compiled model must then parse with sqlfluff's Redshift dialect (no unparsable
section), and contain none of the PostgreSQL-only constructs that sqlfluff would accept but
Redshift rejects. The data tests are compiled too (the privacy test reads the catalogue with
`run_query` while compiling: a stand-in answers with a small fake catalogue), and no model
or test may mix the leader-node catalogue with user tables in one query, or call the
two-argument `substring(s, p)` that Redshift does not document.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlfluff
from sqlfluff.api.simple import APIParsingError

REPO = Path(__file__).resolve().parents[2]
DBT_PROJECT = REPO / "dbt_project"
COMPILE_TIMEOUT_SECONDS = 300

# Runs inside the dbt subprocess: argv = mode ("full" | "incremental"), target path, log path.
_COMPILE_OFFLINE = """
import sys
from dbt.adapters.redshift import RedshiftAdapter
from dbt.cli.main import dbtRunner

mode, target_path, log_path = sys.argv[1:4]

def get_relation(self, database, schema, identifier):
    if mode == "incremental":
        return self.Relation.create(
            database=database, schema=schema, identifier=identifier, type="table"
        )
    return None

# The privacy test lists text columns from information_schema while compiling.
CATALOGUE = [("marts", "dim_products", "product_name"), ("reporting", "rpt_file_loads", "status")]

def execute(self, sql, auto_begin=False, fetch=False, limit=None):
    import agate
    from dbt.adapters.contracts.connection import AdapterResponse

    if "information_schema.columns" not in sql:
        raise RuntimeError("compiling must not query the warehouse: " + sql[:300])
    rows = [] if "customer_name" in sql else CATALOGUE
    table = agate.Table(rows, ["table_schema", "table_name", "column_name"], [agate.Text()] * 3)
    return AdapterResponse(_message="SELECT"), table

RedshiftAdapter.get_relation = get_relation
RedshiftAdapter.execute = execute
result = dbtRunner().invoke([
    "compile", "--target", "prod",
    "--no-populate-cache", "--no-introspect", "--no-partial-parse", "--quiet",
    "--select", "resource_type:model", "resource_type:test", "--indirect-selection", "empty",
    "--target-path", target_path, "--log-path", log_path,
])
if not result.success:
    print(result.exception, file=sys.stderr)
sys.exit(0 if result.success else 1)
"""

# Constructs PostgreSQL accepts and Redshift does not (sqlfluff's Redshift dialect parses
# several of them, so the parse alone would not catch them).
POSTGRES_ONLY = {
    "generate_series() (leader node only on Redshift)": r"\bgenerate_series\s*\(",
    "unnest()": r"\bunnest\s*\(",
    "regexp_split_to_table/array()": r"\bregexp_split_to_(?:table|array)\s*\(",
    "string_to_array()": r"\bstring_to_array\s*\(",
    "array_agg()": r"\barray_agg\s*\(",
    "ARRAY[...] constructor": r"\barray\s*\[",
    "DISTINCT ON": r"\bdistinct\s+on\s*\(",
    "LATERAL join": r"\blateral\b",
    "aggregate FILTER (WHERE ...)": r"\bfilter\s*\(\s*where\b",
    "jsonb": r"\bjsonb\b",
}
# Redshift stores an unsized varchar as VARCHAR(256) and text as VARCHAR(256).
UNSIZED_TEXT_TYPES = {"text", "varchar", "character varying", "string", "nvarchar"}


@dataclass(frozen=True)
class CompiledProject:
    mode: str
    models: dict[str, str]  # unique_id -> compiled SQL
    manifest: dict[str, Any]
    tests: dict[str, str]  # unique_id -> compiled SQL of the data tests

    def model_nodes(self) -> dict[str, dict[str, Any]]:
        return {
            unique_id: node
            for unique_id, node in self.manifest["nodes"].items()
            if node["resource_type"] == "model"
        }


def _closed_loopback_port() -> int:
    """A loopback port nothing listens on (bound and released: refused if dialled)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _offline_redshift_env(profiles_dir: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CAFE_PG_", "CAFE_REDSHIFT_", "DBT_"))
    }
    env.update(
        {
            "DBT_PROFILES_DIR": str(profiles_dir),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "CAFE_DBT_TARGET": "prod",
            "CAFE_REDSHIFT_HOST": "127.0.0.1",
            "CAFE_REDSHIFT_PORT": str(_closed_loopback_port()),
            "CAFE_REDSHIFT_USER": "compile_only",
            "CAFE_REDSHIFT_PASSWORD": "not-a-secret",
            "CAFE_REDSHIFT_DBNAME": "cafe",
        }
    )
    return env


def _read_compiled(mode: str, target: Path) -> CompiledProject:
    manifest = json.loads((target / "manifest.json").read_text())
    compiled: dict[str, dict[str, str]] = {"model": {}, "test": {}}
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] in compiled:
            path = Path(node["compiled_path"])
            path = path if path.is_absolute() else DBT_PROJECT / path
            compiled[node["resource_type"]][unique_id] = path.read_text()
    return CompiledProject(mode, compiled["model"], manifest, compiled["test"])


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CompiledProject]:
    """The project compiled for Redshift twice, as a full build and as an incremental run."""
    root = tmp_path_factory.mktemp("redshift_compile")
    profiles_dir = root / "profiles"
    profiles_dir.mkdir()
    shutil.copyfile(REPO / "profiles.example.yml", profiles_dir / "profiles.yml")
    env = _offline_redshift_env(profiles_dir)
    runs: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    for mode in ("full", "incremental"):
        target = root / f"target_{mode}"
        command = [sys.executable, "-c", _COMPILE_OFFLINE, mode, str(target), str(root / "logs")]
        process = subprocess.Popen(
            command,
            cwd=DBT_PROJECT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        runs[mode] = (process, target)
    results: dict[str, CompiledProject] = {}
    for mode, (process, target) in runs.items():
        output, _ = process.communicate(timeout=COMPILE_TIMEOUT_SECONDS)
        assert process.returncode == 0, f"dbt compile --target prod ({mode}) failed:\n{output}"
        results[mode] = _read_compiled(mode, target)
    return results


def _without_comments(sql: str) -> str:
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.DOTALL)
    return re.sub(r"--[^\n]*", " ", sql)


@pytest.mark.slow
def test_compiles_every_model_with_the_redshift_adapter(
    compiled: dict[str, CompiledProject],
) -> None:
    model_files = {path.stem for path in (DBT_PROJECT / "models").rglob("*.sql")}
    for project in compiled.values():
        assert project.manifest["metadata"]["adapter_type"] == "redshift"
        names = {node["name"] for node in project.model_nodes().values()}
        assert names == model_files
        assert all(sql.strip() for sql in project.models.values())


@pytest.mark.slow
def test_incremental_models_compile_their_incremental_branch(
    compiled: dict[str, CompiledProject],
) -> None:
    full, incremental = compiled["full"], compiled["incremental"]
    incremental_models = [
        unique_id
        for unique_id, node in full.model_nodes().items()
        # Incremental by file; rpt_build_results is an append-only record filled by a hook.
        if node["config"]["materialized"] == "incremental"
        and node["config"].get("unique_key") == "source_key"
    ]
    assert incremental_models, "the facts are expected to be incremental"
    for unique_id in incremental_models:
        node = full.model_nodes()[unique_id]
        own_table = f'"{node["schema"]}"."{node["alias"]}"'
        assert own_table not in full.models[unique_id], f"{unique_id} reads itself on a full build"
        assert own_table in incremental.models[unique_id], (
            f"{unique_id}: the incremental SQL does not read the existing table"
        )


def _distinct_compiled_sql(compiled: dict[str, CompiledProject]) -> dict[str, str]:
    """Every distinct compiled model, named `<model> (<mode>)`; the same SQL is parsed once."""
    distinct: dict[str, str] = {}
    seen: set[str] = set()
    for mode, project in compiled.items():
        for unique_id, sql in sorted(project.models.items()):
            if sql not in seen:
                seen.add(sql)
                distinct[f"{unique_id} ({mode})"] = sql
    return distinct


@pytest.mark.slow
def test_compiled_models_parse_as_redshift_sql(compiled: dict[str, CompiledProject]) -> None:
    unparsable: dict[str, str] = {}
    for name, sql in _distinct_compiled_sql(compiled).items():
        try:
            sqlfluff.parse(sql, dialect="redshift")
        except APIParsingError as error:
            unparsable[name] = str(error)
    assert not unparsable, "\n\n".join(f"{name}:\n{error}" for name, error in unparsable.items())


@pytest.mark.slow
def test_compiled_models_use_no_postgres_only_sql(compiled: dict[str, CompiledProject]) -> None:
    found = [
        f"{name}: {construct}"
        for name, sql in _distinct_compiled_sql(compiled).items()
        for construct, pattern in POSTGRES_ONLY.items()
        if re.search(pattern, _without_comments(sql), flags=re.IGNORECASE)
    ]
    assert not found, "\n".join(found)


@pytest.mark.slow
def test_contracted_text_columns_are_sized(compiled: dict[str, CompiledProject]) -> None:
    contracted = [
        node
        for node in compiled["full"].model_nodes().values()
        if node["config"].get("contract", {}).get("enforced")
    ]
    assert contracted, "the marts are expected to have enforced contracts"
    unsized = [
        f"{node['name']}.{column['name']}: {column['data_type']}"
        for node in contracted
        for column in node["columns"].values()
        if (column.get("data_type") or "").strip().lower() in UNSIZED_TEXT_TYPES
    ]
    assert not unsized, "would be VARCHAR(256) on Redshift:\n" + "\n".join(unsized)


@pytest.mark.slow
def test_core_marts_carry_redshift_distribution(compiled: dict[str, CompiledProject]) -> None:
    """Facts and dimensions say how Redshift spreads them over the slices."""
    tables = [
        node
        for node in compiled["full"].model_nodes().values()
        if node["fqn"][1:3] == ["marts", "core"] and node["config"]["materialized"] != "view"
    ]
    assert tables
    undistributed = [node["name"] for node in tables if not node["config"].get("dist")]
    assert not undistributed, f"no dist config for Redshift: {undistributed}"


# Redshift's leader-node catalogue: a query may read it or user tables, never both.
LEADER_NODE_CATALOGUE = re.compile(
    r"\b(?:information_schema|pg_catalog)\s*\.|\b(?:pg|svv|stv|stl|svl)_[a-z_]+\b", re.IGNORECASE
)
USER_RELATION = re.compile(r'"[^"]+"\s*\.\s*"[^"]+"\s*\.\s*"[^"]+"')


def _every_compiled_node(compiled: dict[str, CompiledProject]) -> dict[str, str]:
    found: dict[str, str] = {}
    for mode, project in compiled.items():
        for unique_id, sql in {**project.models, **project.tests}.items():
            found[f"{unique_id} ({mode})"] = _without_comments(sql)
    return found


@pytest.mark.slow
def test_data_tests_compile_for_redshift(compiled: dict[str, CompiledProject]) -> None:
    privacy = [
        sql
        for unique_id, sql in compiled["full"].tests.items()
        if unique_id.split(".")[2] == "assert_no_customer_names_outside_raw"
    ]
    assert len(privacy) == 1
    # The fake catalogue's text columns became checks on user tables, and nothing else did.
    assert '"marts"."dim_products"' in privacy[0]
    assert '"reporting"."rpt_file_loads"' in privacy[0]
    assert "information_schema" not in _without_comments(privacy[0])


@pytest.mark.slow
def test_no_query_mixes_the_catalogue_with_user_tables(
    compiled: dict[str, CompiledProject],
) -> None:
    mixed = [
        name
        for name, sql in _every_compiled_node(compiled).items()
        if LEADER_NODE_CATALOGUE.search(sql) and USER_RELATION.search(sql)
    ]
    assert not mixed, "Redshift refuses these queries:\n" + "\n".join(mixed)


def _substring_arguments(sql: str, start: int) -> list[str]:
    """The top-level comma-separated arguments of the call whose `(` is at `start`."""
    depth = 0
    arguments: list[str] = []
    current: list[str] = []
    for char in sql[start:]:
        if char == "(":
            depth += 1
            if depth == 1:
                continue
        elif char == ")":
            depth -= 1
            if depth == 0:
                arguments.append("".join(current))
                return arguments
        elif char == "," and depth == 1:
            arguments.append("".join(current))
            current = []
            continue
        current.append(char)
    return arguments


@pytest.mark.slow
def test_no_two_argument_substring(compiled: dict[str, CompiledProject]) -> None:
    """`substring(s, p)` is not in Redshift's documentation; `substring(s from p)` is."""
    found = []
    for name, sql in _every_compiled_node(compiled).items():
        for call in re.finditer(r"\bsubstring\s*\(", sql, flags=re.IGNORECASE):
            arguments = _substring_arguments(sql, call.end() - 1)
            if len(arguments) == 2:
                found.append(f"{name}: substring({', '.join(a.strip() for a in arguments)})")
    assert not found, "\n".join(found)


def test_the_checks_above_catch_what_they_look_for() -> None:
    """The two scanners flag the constructs of issue 14 (6, 7) and pass their fixes."""
    catalogue_join = (
        "select c.column_name from information_schema.columns as c union all "
        'select note from "cafe"."reporting"."leak_probe"'
    )
    assert LEADER_NODE_CATALOGUE.search(catalogue_join) and USER_RELATION.search(catalogue_join)
    assert not LEADER_NODE_CATALOGUE.search('select * from "cafe"."marts"."dim_products"')
    assert len(_substring_arguments("substring(basket, position(' - ' in basket) + 3)", 9)) == 2
    assert len(_substring_arguments("substring(basket from 3 for 2)", 9)) == 1
