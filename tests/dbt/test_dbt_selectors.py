"""The scheduled builds' flags: their selector (dbt_project/selectors.yml) leaves out exactly
the checks of inputs fixed in the repository, the unit tests and the seeds' own tests, and
dbt's file log keeps warnings and errors only."""

from __future__ import annotations

import json

from dbt_helpers import AS_SCHEDULED, DbtWarehouse, assert_dbt_ok, run_dbt_captured

from cafe.dbt_project import dbt_log_dir

BUILT_BY_DBT_BUILD = ("model", "seed", "snapshot", "test", "unit_test")


def test_the_scheduled_build_leaves_out_unit_tests_and_the_seeds_own_tests(
    dbt_warehouse: DbtWarehouse,
) -> None:
    listed = run_dbt_captured(
        dbt_warehouse.settings,
        "ls",
        *AS_SCHEDULED,
        "--output",
        "json",
        "--output-keys",
        "unique_id",
    )
    assert_dbt_ok(listed)
    selected = {
        json.loads(line)["unique_id"] for line in listed.stdout.splitlines() if line.startswith("{")
    }
    manifest = json.loads((dbt_warehouse.kept_state / "manifest.json").read_text())
    everything = {**manifest["nodes"], **manifest["unit_tests"]}
    built = {uid for uid, node in everything.items() if node["resource_type"] in BUILT_BY_DBT_BUILD}
    seeds_own_tests = {
        uid
        for uid in built
        if everything[uid]["resource_type"] == "test"
        and everything[uid]["original_file_path"].startswith("seeds/")
    }
    assert seeds_own_tests, "the seeds are expected to carry tests of their own"
    assert set(manifest["unit_tests"]), "the models are expected to carry unit tests"
    assert built & selected == built - set(manifest["unit_tests"]) - seeds_own_tests
    # A test of a model that reads a seed checks the day's data: it stays.
    to_seeds = {
        uid
        for uid in built - seeds_own_tests
        if everything[uid]["resource_type"] == "test"
        and any(parent.startswith("seed.") for parent in everything[uid]["depends_on"]["nodes"])
    }
    assert to_seeds and to_seeds <= selected


def _file_log_of(dbt_warehouse: DbtWarehouse, *args: str) -> str:
    """What one dbt command adds to dbt.log (this worker's own: its commands run in turn)."""
    log = dbt_log_dir() / "dbt.log"
    start = log.stat().st_size if log.exists() else 0
    assert_dbt_ok(run_dbt_captured(dbt_warehouse.settings, *args))
    with log.open("rb") as handle:
        handle.seek(start)
        return handle.read().decode("utf-8", errors="replace")


def test_the_scheduled_build_writes_no_debug_line_to_the_file_log(
    dbt_warehouse: DbtWarehouse,
) -> None:
    assert "[debug]" in _file_log_of(dbt_warehouse, "ls", "--selector", "scheduled_build")
    assert "[debug]" not in _file_log_of(dbt_warehouse, "ls", *AS_SCHEDULED)
