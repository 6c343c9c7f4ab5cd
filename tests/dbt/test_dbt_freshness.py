"""Source freshness runs from the command line and lands where Pipeline health reads it.

`cafe dbt source freshness` (what `cafe run` runs after the build) checks every source's
thresholds; its on-run-end hook writes one row per source into
`reporting.rpt_build_results`, and its sources.json is kept for `source_status:` selection.
"""

from __future__ import annotations

import json

import psycopg
from dbt_helpers import DbtWarehouse, run_cafe

SOURCES = {"till.transactions", "till.loaded_files", "till.rejected_rows", "till.card_links"}


def test_freshness_is_recorded_for_every_source(dbt_warehouse: DbtWarehouse) -> None:
    result = run_cafe(dbt_warehouse.database_url, "dbt", "source", "freshness")
    # The session loaded its files minutes ago: every source is fresh.
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    with psycopg.connect(dbt_warehouse.database_url, autocommit=True) as connection:
        rows = connection.execute(
            "select node_name, check_kind, status, max_loaded_at_utc, age_hours"
            " from reporting.rpt_build_results where command = 'freshness'"
            " and invocation_id = (select invocation_id from reporting.rpt_build_results"
            " where command = 'freshness' order by recorded_at_utc desc limit 1)"
        ).fetchall()
    assert {row[0] for row in rows} == SOURCES
    for name, kind, status, loaded_at, age_hours in rows:
        assert (kind, status) == ("freshness", "pass"), name
        assert loaded_at is not None and 0 <= age_hours < 1, name
    kept = json.loads((dbt_warehouse.kept_state / "sources.json").read_text())
    assert {r["unique_id"].split(".", 2)[2] for r in kept["results"]} == SOURCES
