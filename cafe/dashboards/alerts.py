"""Grafana alert rules for the pipeline, as a Grafana 11 file-provisioning document.

Four rules, each a warehouse SQL query (A) and a threshold expression (B):

- a branch is silent: `rpt_branch_freshness.is_silent`, no export for more than the dbt var
  `silent_after_hours` (26). The mart is a view over the live ledger whose ages use the
  clock of the query that reads it, so the rule fires 26 hours after the last export (plus
  at most one evaluation interval), whenever dbt last ran;
- a branch's files had too many rejected rows over the last 24 hours;
- a file brought a header column never seen before (drift) in the last 24 hours: one
  instance per new column, from `rpt_file_loads.unknown_columns` over all history;
- an integrity check of the latest `dbt build` failed (grain, relationships,
  reconciliation, privacy: what stops the marts that depend on it); data-value warnings
  never alert, they are on Pipeline health's "Build checks".

SQL datasources return one alert instance per row when the query is a table with string
columns (the labels) and exactly one numeric column (the value), so each branch, column or
check alerts on its own; a query with no row is "no data", which these rules treat as OK.
Provisioning files are run through Grafana's environment-variable interpolation, which
would eat `$__timeFilter`; a literal `$` is written `$$` there.

The group is evaluated every `Flavour.poll_interval`: 5 minutes on PostgreSQL, hourly on
Redshift, whose serverless warehouse bills every wake-up (issue 14 point 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cafe.dashboards.flavours import Flavour, ResultFormat
from cafe.dashboards.operations import (
    FAILED_STATUSES,
    columns_first_seen_cte,
    drift_columns_ctes,
    latest_runs_cte,
    sql_list,
)
from cafe.dbt_project import silent_after_hours

FOLDER = "Cafe ELT"
GROUP = "cafe-pipeline"
REJECTED_ROWS_THRESHOLD = 10
DAY_SECONDS = 86_400
EXPRESSION_DATASOURCE_UID = "__expr__"


@dataclass(frozen=True)
class AlertQuery:
    uid: str
    title: str
    sql: str
    threshold: float
    lookback_seconds: int
    pending_for: str
    summary: str
    description: str


def alert_queries(flavour: Flavour) -> tuple[AlertQuery, ...]:
    return (
        AlertQuery(
            uid="cafe-branch-silent",
            title="Branch silent past its daily export",
            sql=f"""
SELECT
    branch_name,
    CASE WHEN is_silent THEN 1 ELSE 0 END AS silent
FROM {flavour.schema}.rpt_branch_freshness
""",
            threshold=0,
            lookback_seconds=DAY_SECONDS,
            pending_for="0s",
            summary="{{ $labels.branch_name }} has sent no till export for more than "
            f"{silent_after_hours()} hours",
            description="rpt_branch_freshness.is_silent is true: the branch's daily file did not "
            "arrive. Check the till export job at the branch, then the landing bucket.",
        ),
        AlertQuery(
            uid="cafe-rejected-rows",
            title="Rejected rows above threshold",
            sql=f"""
SELECT
    coalesce(branch_name, '(unknown)') AS branch_name,
    sum(rows_rejected) AS rejected_rows
FROM {flavour.schema}.rpt_file_loads
WHERE $__timeFilter(started_at_utc)
GROUP BY 1
""",
            threshold=REJECTED_ROWS_THRESHOLD,
            lookback_seconds=DAY_SECONDS,
            pending_for="0s",
            summary=f"{{{{ $labels.branch_name }}}}: more than {REJECTED_ROWS_THRESHOLD} rejected "
            "rows in the last 24 hours",
            description="Lines of this branch's files were refused by validation. The fields "
            "they failed on are on the Pipeline health dashboard (Rejected lines by field), "
            "the lines themselves in raw.rejected_rows.",
        ),
        AlertQuery(
            uid="cafe-new-column",
            title="New column in a branch export",
            sql=f"""
WITH {drift_columns_ctes(flavour.schema)},

{columns_first_seen_cte()}

SELECT
    column_name,
    files AS files_with_column
FROM columns_seen
WHERE $__timeFilter(first_seen_at_utc)
""",
            threshold=0,
            lookback_seconds=DAY_SECONDS,
            pending_for="0s",
            summary="A branch export has a column never seen before: {{ $labels.column_name }}",
            description="A till export's header named a column the loader does not know. The "
            "file was loaded without it (every known column still is). Pipeline health's "
            "Column drift table shows which files and branches carry it: decide whether the "
            "loader should learn it (a synonym of a known column, or a new one).",
        ),
        AlertQuery(
            uid="cafe-build-integrity",
            title="Integrity check failed in the latest dbt build",
            sql=f"""
WITH {latest_runs_cte(flavour.schema)}

SELECT
    results.node_name AS check_name,
    CASE WHEN results.failures > 0 THEN results.failures ELSE 1 END AS failing_rows
FROM {flavour.schema}.rpt_build_results AS results
INNER JOIN latest_runs
    ON results.command = latest_runs.command
    AND results.run_started_at_utc = latest_runs.run_started_at_utc
WHERE latest_runs.command = 'build'
    AND results.check_kind = 'integrity'
    AND results.status IN ({sql_list(FAILED_STATUSES)})
""",
            threshold=0,
            lookback_seconds=DAY_SECONDS,
            pending_for="0s",
            summary="dbt integrity check {{ $labels.check_name }} failed in the latest build",
            description="A grain, relationship, reconciliation or privacy test failed (or "
            "could not run) in the latest dbt build: the marts that depend on it were not "
            "refreshed. Pipeline health's Build checks table lists the checks, worst first; "
            "`cafe build` (or the scheduled build's log) says why.",
        ),
    )


def escape_for_provisioning(text: str) -> str:
    """Protect literal dollars from Grafana's env interpolation of provisioning files."""
    return text.replace("$", "$$")


def _rule(query: AlertQuery, flavour: Flavour) -> dict[str, Any]:
    target = flavour.target(query.sql, ResultFormat.TABLE).build().to_json()
    target[flavour.sql_key] = escape_for_provisioning(target[flavour.sql_key])
    target |= {"intervalMs": 60_000, "maxDataPoints": 43_200}
    return {
        "uid": query.uid,
        "title": query.title,
        "condition": "B",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": query.lookback_seconds, "to": 0},
                "datasourceUid": flavour.datasource.uid,
                "model": target,
            },
            {
                "refId": "B",
                "datasourceUid": EXPRESSION_DATASOURCE_UID,
                "model": {
                    "refId": "B",
                    "type": "threshold",
                    "expression": "A",
                    "datasource": {"type": "__expr__", "uid": EXPRESSION_DATASOURCE_UID},
                    "conditions": [{"evaluator": {"type": "gt", "params": [query.threshold]}}],
                },
            },
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": query.pending_for,
        "annotations": {
            "summary": escape_for_provisioning(query.summary),
            "description": query.description,
        },
        "labels": {"team": "data-platform", "service": "cafe-elt"},
        "isPaused": False,
    }


def alert_provisioning(flavour: Flavour) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": GROUP,
                "folder": FOLDER,
                "interval": flavour.poll_interval,
                "rules": [_rule(query, flavour) for query in alert_queries(flavour)],
            }
        ],
    }
