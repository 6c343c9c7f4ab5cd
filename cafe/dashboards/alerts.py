"""Grafana alert rules for the pipeline, as a Grafana 11 file-provisioning document.

Two rules, each a warehouse SQL query (A) and a threshold expression (B):

- a branch is silent: `rpt_branch_freshness.is_silent` (no export for more than the dbt var
  `silent_after_hours`);
- a branch's files had too many rejected rows over the last 24 hours.

SQL datasources return one alert instance per row when the query is a table with string
columns (the labels) and exactly one numeric column (the value), so each branch alerts on
its own. Provisioning files are run through Grafana's environment-variable interpolation,
which would eat `$__timeFilter`; a literal `$` is written `$$` there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cafe.dashboards.flavours import Flavour, ResultFormat
from cafe.dbt_project import silent_after_hours

FOLDER = "Cafe ELT"
GROUP = "cafe-pipeline"
EVALUATION_INTERVAL = "5m"
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
            description="Lines of this branch's files were refused by validation. The reasons "
            "are on the Pipeline health dashboard (Top rejection reasons) and in "
            "raw.rejected_rows.",
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
                "interval": EVALUATION_INTERVAL,
                "rules": [_rule(query, flavour) for query in alert_queries(flavour)],
            }
        ],
    }
