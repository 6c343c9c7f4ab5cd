"""SQL over the operations marts that Pipeline health's panels and the alert rules share.

Two questions are asked in both places and must get one answer:

- which dbt runs are "the latest" (`latest_runs_cte`): the newest `dbt build` and the newest
  `dbt source freshness` recorded in `rpt_build_results`;
- which header columns a file brought that the loader does not know (`drift_columns_ctes`):
  `rpt_file_loads.unknown_columns` is a comma-separated list, taken apart here into one row
  per (file, column) with `split_part`, which PostgreSQL and Redshift both have. The row
  numbers `split_part` needs come from a cross join of digits, since Redshift's
  `generate_series` runs on the leader node only and cannot meet a user table.

The fragments are plain SQL with no Grafana macro, so either flavour's datasource runs them.
"""

from __future__ import annotations

# Ranks a run result's status, worst first: an error stops what depends on the node, a
# failed test found rows, a warning is a data-value finding, a skipped node never ran.
STATUS_RANK = (
    "CASE {status}"
    " WHEN 'error' THEN 0 WHEN 'runtime error' THEN 0"
    " WHEN 'fail' THEN 1 WHEN 'warn' THEN 2 WHEN 'skipped' THEN 3 ELSE 4 END"
)
FAILED_STATUSES = ("error", "runtime error", "fail")
# How many unknown columns of one file are taken apart (10 x 10 x 10 row numbers); a header
# with more unknown columns than this is not a till export that drifted.
MAX_DRIFT_COLUMNS_PER_FILE = 1000


def status_rank(column: str) -> str:
    return STATUS_RANK.format(status=column)


def sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def latest_runs_cte(schema: str) -> str:
    """`latest_runs(command, run_started_at_utc)`: the newest build and freshness run."""
    return f"""latest_runs AS (
    SELECT
        command,
        max(run_started_at_utc) AS run_started_at_utc
    FROM {schema}.rpt_build_results
    WHERE command IN ('build', 'freshness')
    GROUP BY command
)"""


def drift_columns_ctes(schema: str) -> str:
    """`drift_columns(column_name, source_key, branch_name, started_at_utc)`: one row per
    unknown column of every load attempt whose header had any (every status: a column is
    seen when a file with it arrives, whatever became of the file)."""
    return f"""digits AS (
    SELECT 0 AS digit
    UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
    UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8
    UNION ALL SELECT 9
),

name_positions AS (
    SELECT hundreds.digit * 100 + tens.digit * 10 + units.digit + 1 AS position
    FROM digits AS hundreds
    CROSS JOIN digits AS tens
    CROSS JOIN digits AS units
),

drift_files AS (
    SELECT
        source_key,
        branch_name,
        started_at_utc,
        unknown_columns,
        length(unknown_columns) - length(replace(unknown_columns, ',', '')) + 1 AS column_count
    FROM {schema}.rpt_file_loads
    WHERE has_unknown_columns
),

drift_columns AS (
    SELECT
        split_part(drift_files.unknown_columns, ',', name_positions.position) AS column_name,
        drift_files.source_key,
        drift_files.branch_name,
        drift_files.started_at_utc
    FROM drift_files
    INNER JOIN name_positions ON name_positions.position <= drift_files.column_count
)"""


def columns_first_seen_cte() -> str:
    """`columns_seen`: per unknown column, when a file first and last brought it, how many
    files (distinct keys) and branches. Reads `drift_columns`."""
    return """columns_seen AS (
    SELECT
        column_name,
        min(started_at_utc) AS first_seen_at_utc,
        max(started_at_utc) AS last_seen_at_utc,
        count(DISTINCT source_key) AS files,
        count(DISTINCT branch_name) AS branches
    FROM drift_columns
    GROUP BY column_name
)"""
