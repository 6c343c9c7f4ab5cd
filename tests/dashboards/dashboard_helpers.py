"""Reading the generated dashboards the way Grafana would: panels, SQL targets, datasources."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cafe.dashboards.flavours import FLAVOURS, Flavour, ResultFormat
from cafe.dashboards.provisioning import ALERTS_FILE, DASHBOARDS, dashboard_json
from loader.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "infra" / "grafana"
PROVISIONING = GRAFANA / "provisioning"


@dataclass(frozen=True)
class Marts:
    """The session's built warehouse as the dashboards suite reads it (its `marts` fixture)."""

    database_url: str
    settings: Settings
    broken_lines: int
    broken_branch: str


@dataclass(frozen=True)
class SqlPanelQuery:
    dashboard_uid: str
    flavour: Flavour
    panel_title: str
    panel_type: str
    target: dict[str, Any]

    @property
    def sql(self) -> str:
        text = self.target[self.flavour.sql_key]
        assert isinstance(text, str)
        return text

    @property
    def wants_time_series(self) -> bool:
        return bool(self.target["format"] == self.flavour.formats[ResultFormat.TIME_SERIES])

    def __str__(self) -> str:
        return f"{self.flavour.name}/{self.dashboard_uid}/{self.panel_title}"


def all_dashboards() -> Iterator[tuple[Flavour, dict[str, Any]]]:
    for flavour in FLAVOURS:
        for build in DASHBOARDS.values():
            yield flavour, dashboard_json(build, flavour)


def sql_panel_queries() -> list[SqlPanelQuery]:
    queries = []
    for flavour, dashboard in all_dashboards():
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("uid") == flavour.datasource.uid:
                    queries.append(
                        SqlPanelQuery(
                            dashboard["uid"], flavour, panel["title"], panel["type"], target
                        )
                    )
    return queries


def provisioned_datasources() -> dict[str, str]:
    """uid -> plugin type, from every provisioning file of the datasources folder."""
    found: dict[str, str] = {}
    for path in sorted((PROVISIONING / "datasources").glob("*.yaml")):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            found[source["uid"]] = source["type"]
    return found


def alert_documents() -> dict[str, dict[str, Any]]:
    """Flavour name -> the alert provisioning document committed for it."""
    return {name: yaml.safe_load((ROOT / path).read_text()) for name, path in ALERTS_FILE.items()}


def marts_read(queries: list[SqlPanelQuery]) -> set[str]:
    """The reporting marts (`reporting.rpt_*`) the given queries select from."""
    return {
        word.split(".", 1)[1]
        for query in queries
        for word in query.sql.replace("(", " ").split()
        if word.startswith("reporting.rpt_")
    }


def panel_target_sql(dashboard_uid: str, flavour: Flavour, title: str) -> str:
    """The SQL of the (single-target) panel `title` of a dashboard, in the flavour's model."""
    build = DASHBOARDS[f"{dashboard_uid}.json"]
    dashboard = dashboard_json(build, flavour)
    panel = next(p for p in dashboard["panels"] if p["title"] == title)
    (target,) = panel["targets"]
    sql = target[flavour.sql_key]
    assert isinstance(sql, str)
    return sql


def alert_rule_sql(flavour: Flavour, uid: str) -> tuple[str, float]:
    """An alert rule's query as Grafana runs it (provisioning escape undone) and its threshold."""
    group = alert_documents()[flavour.name]["groups"][0]
    rule = next(r for r in group["rules"] if r["uid"] == uid)
    query = rule["data"][0]
    threshold = rule["data"][1]["model"]["conditions"][0]["evaluator"]["params"][0]
    # Undo the provisioning escape exactly as Grafana's interpolation does.
    sql = query["model"][flavour.sql_key].replace("$$", "$")
    assert isinstance(sql, str)
    return sql, float(threshold)


def loader_metric_names() -> set[str]:
    """Every metric name the Lambda handler publishes (`add_metric` / `single_metric` calls)."""
    tree = ast.parse((ROOT / "loader" / "handler.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            called = getattr(function, "attr", None) or getattr(function, "id", None)
            if called in ("add_metric", "single_metric"):
                for keyword in node.keywords:
                    if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                        names.add(str(keyword.value.value))
    assert names, "no metric found in loader/handler.py"
    return names
