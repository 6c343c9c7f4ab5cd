"""The generated dashboards, provisioning and alert rules are what Grafana 11 expects."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import sqlfluff
import yaml
from dashboard_helpers import (
    PROVISIONING,
    ROOT,
    alert_documents,
    all_dashboards,
    loader_metric_names,
    marts_read,
    provisioned_datasources,
    sql_panel_queries,
)
from sqlfluff.api.simple import APIParsingError

from cafe.dashboards import cafe_sales, pipeline_health
from cafe.dashboards.flavours import (
    CLOUDWATCH_UID,
    FLAVOURS,
    POSTGRES,
    REDSHIFT,
    Flavour,
    ResultFormat,
)
from cafe.dashboards.macros import TimeRange, Variable, parse_interval, render
from cafe.dashboards.provisioning import main as generate_main
from cafe.dashboards.provisioning import rendered_files, stale_files
from loader import handler

DATASOURCE_REF = {
    "type": "object",
    "required": ["type", "uid"],
    "properties": {"type": {"type": "string"}, "uid": {"type": "string", "minLength": 1}},
}
DASHBOARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["uid", "title", "panels", "templating", "time", "schemaVersion", "timezone"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-z0-9-]{3,40}$"},
        "title": {"type": "string", "minLength": 1},
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {
                "list": {
                    "type": "array",
                    "items": {"type": "object", "required": ["name", "type"]},
                }
            },
        },
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos", "datasource", "targets"],
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "type": {
                        "enum": ["stat", "timeseries", "table", "heatmap", "piechart", "bargauge"]
                    },
                    "title": {"type": "string", "minLength": 1},
                    "datasource": DATASOURCE_REF,
                    "gridPos": {
                        "type": "object",
                        "required": ["x", "y", "w", "h"],
                        "properties": {
                            "x": {"type": "integer", "minimum": 0, "maximum": 23},
                            "y": {"type": "integer", "minimum": 0},
                            "w": {"type": "integer", "minimum": 1, "maximum": 24},
                            "h": {"type": "integer", "minimum": 1},
                        },
                    },
                    "targets": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["refId", "datasource"],
                            "properties": {"datasource": DATASOURCE_REF},
                        },
                    },
                },
            },
        },
    },
}
DASHBOARDS = list(all_dashboards())
DASHBOARD_IDS = [f"{flavour.name}-{dashboard['uid']}" for flavour, dashboard in DASHBOARDS]


def test_committed_files_are_up_to_date() -> None:
    stale = stale_files(ROOT)
    assert not stale, f"regenerate with `python -m cafe.dashboards.provisioning`: {stale}"


def test_check_mode_fails_on_a_stale_copy(tmp_path: Path) -> None:
    assert generate_main(["--root", str(tmp_path), "--check"]) == 1
    assert generate_main(["--root", str(tmp_path)]) == 0
    assert generate_main(["--root", str(tmp_path), "--check"]) == 0
    some_file = next(iter(rendered_files()))
    (tmp_path / some_file).write_text("{}\n")
    assert generate_main(["--root", str(tmp_path), "--check"]) == 1


def test_both_flavours_of_both_dashboards_are_committed() -> None:
    for flavour in FLAVOURS:
        for uid in (cafe_sales.UID, pipeline_health.UID):
            assert (ROOT / "infra/grafana/dashboards" / flavour.name / f"{uid}.json").is_file()


@pytest.mark.parametrize(("flavour", "dashboard"), DASHBOARDS, ids=DASHBOARD_IDS)
def test_dashboard_shape(flavour: Flavour, dashboard: dict[str, Any]) -> None:
    jsonschema.validate(dashboard, DASHBOARD_SCHEMA)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


@pytest.mark.parametrize(("flavour", "dashboard"), DASHBOARDS, ids=DASHBOARD_IDS)
def test_panels_do_not_overlap(flavour: Flavour, dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize(("flavour", "dashboard"), DASHBOARDS, ids=DASHBOARD_IDS)
def test_every_datasource_reference_is_provisioned(
    flavour: Flavour, dashboard: dict[str, Any]
) -> None:
    provisioned = provisioned_datasources()
    references = [panel["datasource"] for panel in dashboard["panels"]]
    references += [t["datasource"] for p in dashboard["panels"] for t in p["targets"]]
    references += [v["datasource"] for v in dashboard["templating"]["list"] if "datasource" in v]
    for reference in references:
        assert provisioned.get(reference["uid"]) == reference["type"], reference
    used = {reference["uid"] for reference in references}
    assert flavour.datasource.uid in used
    other = REDSHIFT if flavour is POSTGRES else POSTGRES
    assert other.datasource.uid not in used


@pytest.mark.parametrize("query", sql_panel_queries(), ids=str)
def test_sql_targets_use_the_flavours_query_model(query: Any) -> None:
    target = query.target
    if query.flavour is POSTGRES:
        assert "rawSQL" not in target and target["format"] in ("time_series", "table")
        assert target["rawQuery"] is True and target["editorMode"] == "code"
    else:
        assert "rawSql" not in target and target["format"] in (0, 1)
    window = TimeRange(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
    variables = {
        "branch": Variable.all_of("branch", ["Leeds"]),
        "product_category": Variable.all_of("product_category", ["Tea"]),
    }
    expanded = render(query.sql, query.flavour.name, window, variables)
    assert "$" not in expanded, "every macro and variable must expand"


# PostgreSQL functions that Redshift lacks, or runs on the leader node only (which cannot
# read user tables): a Redshift query that uses one fails there, not here.
NOT_ON_REDSHIFT = re.compile(
    r"\b(generate_series|string_agg|array_agg|unnest|string_to_array|regexp_split_to_table"
    r"|array_length|jsonb?_\w+)\s*\(",
    re.IGNORECASE,
)


def _redshift_queries() -> list[tuple[str, str]]:
    window = TimeRange(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
    variables = {
        "branch": Variable.all_of("branch", ["Leeds"]),
        "product_category": Variable.all_of("product_category", ["Tea"]),
    }
    queries = [(str(q), q.sql) for q in sql_panel_queries() if q.flavour is REDSHIFT]
    for rule in alert_documents()[REDSHIFT.name]["groups"][0]["rules"]:
        queries.append((rule["uid"], rule["data"][0]["model"][REDSHIFT.sql_key].replace("$$", "$")))
    return [(name, render(text, "redshift", window, variables)) for name, text in queries]


def test_redshift_queries_parse_in_the_redshift_dialect_and_use_no_postgres_only_function() -> None:
    queries = _redshift_queries()
    assert len(queries) > 20
    for name, text in queries:
        assert not NOT_ON_REDSHIFT.search(text), name
        try:
            sqlfluff.parse(text, dialect="redshift")
        except APIParsingError as error:
            pytest.fail(f"{name}: {error}")


def test_business_dashboard_contents() -> None:
    for flavour in FLAVOURS:
        dashboard = next(d for f, d in DASHBOARDS if f is flavour and d["uid"] == cafe_sales.UID)
        assert dashboard["title"] == "Café sales"
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        for name in ("branch", "product_category"):
            assert variables[name]["multi"] is True and variables[name]["includeAll"] is True
            assert "reporting.rpt_" in variables[name]["definition"]
        stats = [p for p in dashboard["panels"] if p["type"] == "stat"]
        assert [p["title"] for p in stats] == [
            "Revenue",
            "Transactions",
            "Average basket",
            "Active branches",
            "Products sold",
        ]
        assert all(p["options"]["showPercentChange"] for p in stats)
        types = {p["type"] for p in dashboard["panels"]}
        assert {"timeseries", "piechart", "heatmap", "table", "bargauge"} <= types
        top = next(p for p in dashboard["panels"] if p["title"] == "Top products")
        sql = top["targets"][0][flavour.sql_key]
        assert "${branch:sqlstring}" in sql and "${product_category:sqlstring}" in sql


def _cloudwatch_targets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        target
        for panel in dashboard["panels"]
        for target in panel["targets"]
        if target["datasource"]["uid"] == CLOUDWATCH_UID
    ]


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.name)
def test_cloudwatch_panels(flavour: Flavour) -> None:
    dashboard = next(d for f, d in DASHBOARDS if f is flavour and d["uid"] == pipeline_health.UID)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["lambda_function"]["query"] and variables["dlq_name"]["query"]
    targets = _cloudwatch_targets(dashboard)
    lambda_metrics = {t["metricName"] for t in targets if t["namespace"] == "AWS/Lambda"}
    assert lambda_metrics == {"Invocations", "Errors", "Duration", "Throttles"}
    loader_metrics = {t["metricName"] for t in targets if t["namespace"] == "CafeElt"}
    # The outcomes the ledger cannot show (deferred files have no row) among them, and only
    # metrics the loader publishes.
    assert {"StaleVersionsSkipped", "LoadsDeferred"} <= loader_metrics <= loader_metric_names()
    for target in targets:
        assert target["queryMode"] == "Metrics" and target["statistic"]
        assert target["region"] == "default" and target["matchExact"] is True
        if target["namespace"] == "AWS/Lambda":
            assert target["dimensions"] == {"FunctionName": "$lambda_function"}
        elif target["namespace"] == "CafeElt":
            # The loader's metrics carry the service dimension only (FilesLoaded also exists
            # per branch, which an exact match leaves out).
            assert target["dimensions"] == {"service": "cafe-loader"}
        else:
            assert target["namespace"] == "AWS/SQS"
            assert target["metricName"] == "ApproximateNumberOfMessagesVisible"
            assert target["dimensions"] == {"QueueName": "$dlq_name"}


def test_loader_metric_names_match_the_lambda_handler() -> None:
    assert pipeline_health.LOADER_METRICS_NAMESPACE == handler.METRICS_NAMESPACE
    assert pipeline_health.LOADER_SERVICE == handler.SERVICE_NAME


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.name)
def test_pipeline_health_contents(flavour: Flavour) -> None:
    dashboard = next(d for f, d in DASHBOARDS if f is flavour and d["uid"] == pipeline_health.UID)
    panels = {p["title"]: p for p in dashboard["panels"]}
    # What answers "is everything fine?" comes first, top left to right.
    assert [p["title"] for p in dashboard["panels"][:2]] == ["Freshness per branch", "Build checks"]
    assert {"Files per hour", "Failed loads", "Column drift", "Rejected lines by field"} <= set(
        panels
    )

    def sql(title: str) -> str:
        (target,) = panels[title]["targets"]
        text = target[flavour.sql_key]
        assert isinstance(text, str)
        return text

    for series in ("Stale", "Running", "Died"):
        assert f'AS "{series}"' in sql("Files per hour")
    assert "is_abandoned" in sql("Failed loads")
    assert "reporting.rpt_build_results" in sql("Build checks")
    assert "unknown_columns" in sql("Column drift")
    assert "reason_category" in sql("Rejected lines by field")
    # The latest runs and the state of the branches, whatever range is on screen.
    for title in ("Build checks", "Freshness per branch"):
        assert "$__timeFilter" not in sql(title)
    status = next(
        o
        for o in panels["Build checks"]["fieldConfig"]["overrides"]
        if o["matcher"]["options"] == "Status"
    )
    assert {"id": "custom.cellOptions", "value": {"type": "color-background"}} in status[
        "properties"
    ]
    (mapping,) = panels["Build checks"]["fieldConfig"]["defaults"]["mappings"]
    assert mapping["options"]["error"]["color"] == "red"
    assert mapping["options"]["warn"]["color"] == "orange"


def test_freshness_panel_turns_red_when_a_branch_is_silent() -> None:
    dashboard = next(d for f, d in DASHBOARDS if d["uid"] == pipeline_health.UID)
    panel = next(p for p in dashboard["panels"] if p["title"] == "Freshness per branch")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": pipeline_health.SILENT_AFTER_HOURS}


def test_datasource_provisioning() -> None:
    document = yaml.safe_load((PROVISIONING / "datasources" / "cafe.yaml").read_text())
    sources = {source["uid"]: source for source in document["datasources"]}
    postgres = sources[POSTGRES.datasource.uid]
    assert postgres["type"] == "grafana-postgresql-datasource"
    assert postgres["user"] == "cafe_reporting"
    assert postgres["secureJsonData"]["password"] == "$__env{CAFE_REPORTING_PASSWORD}"
    assert "$__env{CAFE_PG_HOST}" in postgres["url"]
    redshift = sources[REDSHIFT.datasource.uid]
    assert redshift["type"] == "grafana-redshift-datasource"
    assert "secureJsonData" not in redshift, "Redshift authenticates with IAM and Secrets Manager"
    assert redshift["jsonData"]["useManagedSecret"] is True
    assert sources[CLOUDWATCH_UID]["type"] == "cloudwatch"


def test_dashboard_provider_points_at_one_flavour_folder() -> None:
    document = yaml.safe_load((PROVISIONING / "dashboards" / "cafe.yaml").read_text())
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].endswith("/$__env{CAFE_WAREHOUSE}")


ALERT_MARTS = {
    "cafe-branch-silent": {"rpt_branch_freshness"},
    "cafe-rejected-rows": {"rpt_file_loads"},
    "cafe-new-column": {"rpt_file_loads"},
    "cafe-build-integrity": {"rpt_build_results"},
}


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.name)
def test_alert_rules_structure(flavour: Flavour) -> None:
    document = alert_documents()[flavour.name]
    assert document["apiVersion"] == 1
    (group,) = document["groups"]
    assert group["folder"] and group["interval"] and group["orgId"] == 1
    rules = {rule["uid"]: rule for rule in group["rules"]}
    assert set(rules) == set(ALERT_MARTS)
    for uid, rule in rules.items():
        ref_ids = [query["refId"] for query in rule["data"]]
        assert rule["condition"] in ref_ids
        query, threshold = rule["data"]
        assert query["datasourceUid"] == flavour.datasource.uid
        assert query["relativeTimeRange"]["from"] > 0
        assert query["model"]["format"] == flavour.formats[ResultFormat.TABLE]
        assert threshold["datasourceUid"] == "__expr__"
        assert threshold["model"]["type"] == "threshold"
        assert threshold["model"]["expression"] == "A"
        # A query that returns nothing means nothing is wrong (no silent branch, no new column).
        assert rule["noDataState"] == "OK" and rule["execErrState"] == "Error"
        sql = query["model"][flavour.sql_key]
        # Provisioning files are env-interpolated: every literal dollar must be doubled.
        assert "$" not in sql.replace("$$", "")
        read = {word.split(".", 1)[1] for word in sql.split() if word.startswith("reporting.")}
        assert read == ALERT_MARTS[uid], uid
    assert "is_silent" in rules["cafe-branch-silent"]["data"][0]["model"][flavour.sql_key]


def test_warehouse_backed_alert_rules_of_redshift_are_evaluated_at_most_hourly() -> None:
    # Each evaluation wakes Redshift Serverless, billed for at least 60 s of its base
    # capacity: every 5 minutes keeps it awake all month (issue 14 point 10).
    (group,) = alert_documents()[REDSHIFT.name]["groups"]
    assert parse_interval(group["interval"]) >= 3600
    # A Redshift dashboard left open on auto-refresh must not poll it more often either.
    for flavour, dashboard in DASHBOARDS:
        if flavour is REDSHIFT and dashboard["refresh"]:
            assert parse_interval(dashboard["refresh"]) >= 3600, dashboard["uid"]


def test_postgres_alert_rules_are_evaluated_every_few_minutes() -> None:
    # A local PostgreSQL costs nothing more busy than idle: the silent-branch alert fires
    # within minutes of the 26th hour.
    (group,) = alert_documents()[POSTGRES.name]["groups"]
    assert parse_interval(group["interval"]) <= 300


@pytest.mark.parametrize(
    ("exposure", "dashboard_uid"),
    [("cafe_sales_dashboard", cafe_sales.UID), ("pipeline_health_dashboard", pipeline_health.UID)],
)
def test_dbt_exposures_list_exactly_the_marts_a_dashboard_reads(
    exposure: str, dashboard_uid: str
) -> None:
    models = ROOT / "dbt_project" / "models"
    if not models.is_dir():
        pytest.skip("no dbt project in this checkout")
    declared: list[dict[str, Any]] = []
    for path in models.rglob("*.yml"):
        document = yaml.safe_load(path.read_text()) or {}
        declared += [e for e in document.get("exposures", []) if e.get("name") == exposure]
    assert len(declared) == 1, f"exposure {exposure} must be declared once"
    depends_on = {
        ref.split("'")[1] if "'" in ref else ref.split('"')[1]
        for ref in declared[0].get("depends_on", [])
    }
    assert depends_on == marts_read(
        [q for q in sql_panel_queries() if q.dashboard_uid == dashboard_uid]
    )
