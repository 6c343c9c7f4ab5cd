"""Reading the generated dashboards the way Grafana would: panels, SQL targets, datasources."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cafe.dashboards.flavours import FLAVOURS, Flavour, ResultFormat
from cafe.dashboards.provisioning import ALERTS_FILE, DASHBOARDS, dashboard_json

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "infra" / "grafana"
PROVISIONING = GRAFANA / "provisioning"


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
