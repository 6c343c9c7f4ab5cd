"""The two warehouse datasources a dashboard can be generated for, and the CloudWatch one.

PostgreSQL (Grafana's core `grafana-postgresql-datasource`) and Amazon Redshift (the
`grafana-redshift-datasource` plugin) run the same SQL over the same marts, but their query
models differ: PostgreSQL targets carry `rawSql` and a string `format`, Redshift targets
`rawSQL` and a numeric format (0 = time series, 1 = table), and the plugins expand a
different set of macros. Everything flavour-specific is decided here, so the dashboard
definitions are written once.

The datasource UIDs are fixed and match `infra/grafana/provisioning/datasources/cafe.yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models.common import DataSourceRef

from cafe.dashboards.macros import FlavourName

POSTGRES_UID = "cafe-postgres"
REDSHIFT_UID = "cafe-redshift"
CLOUDWATCH_UID = "cafe-cloudwatch"
CLOUDWATCH = DataSourceRef(type_val="cloudwatch", uid=CLOUDWATCH_UID)
# Where dbt builds the reporting marts (`marts/reporting`, read by the cafe_reporting role).
REPORTING_SCHEMA = "reporting"


class ResultFormat(Enum):
    TIME_SERIES = "time_series"
    TABLE = "table"


class SqlTarget(Dataquery):
    """A SQL panel query in the JSON shape of one datasource plugin."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload

    def to_json(self) -> dict[str, Any]:
        return self.payload


class SqlTargetBuilder(Builder[SqlTarget]):
    """The SDK has no builder for the SQL datasources; this one plugs into `with_target`."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self._payload = payload

    def build(self) -> SqlTarget:
        return SqlTarget(dict(self._payload))


@dataclass(frozen=True)
class Flavour:
    name: FlavourName
    datasource: DataSourceRef
    sql_key: str
    formats: dict[ResultFormat, str | int]
    # The shortest interval at which something unattended (an alert rule's evaluation, an
    # operations dashboard left open on auto-refresh) may query this warehouse.
    poll_interval: str

    @property
    def schema(self) -> str:
        return REPORTING_SCHEMA

    def target(self, sql: str, result: ResultFormat, ref_id: str = "A") -> SqlTargetBuilder:
        payload: dict[str, Any] = {
            "refId": ref_id,
            "datasource": self.datasource.to_json(),
            self.sql_key: sql.strip(),
            "format": self.formats[result],
        }
        if self.name == "postgres":
            # Without these Grafana 11 opens the query in its visual builder and may rewrite it.
            payload |= {"rawQuery": True, "editorMode": "code"}
        return SqlTargetBuilder(payload)

    def variable_query(self, sql: str) -> str | dict[str, Any]:
        """A query-variable definition: PostgreSQL takes plain SQL, Redshift a query model."""
        if self.name == "postgres":
            return sql.strip()
        return {"refId": "A", self.sql_key: sql.strip(), "format": self.formats[ResultFormat.TABLE]}

    def time_group(self, column: str, interval: str) -> str:
        """A select item bucketing `column` into `interval` epochs, named "time" on both plugins.

        PostgreSQL's `$__timeGroup` yields a bare expression (its `$__timeGroupAlias` adds the
        alias) while Redshift's `$__timeGroup` always appends `AS "time"` and has no alias form;
        group by position (`GROUP BY 1`) since neither expansion is valid in a GROUP BY clause.
        """
        macro = "$__timeGroupAlias" if self.name == "postgres" else "$__timeGroup"
        return f"{macro}({column}, '{interval}')"


POSTGRES = Flavour(
    name="postgres",
    datasource=DataSourceRef(type_val="grafana-postgresql-datasource", uid=POSTGRES_UID),
    sql_key="rawSql",
    formats={ResultFormat.TIME_SERIES: "time_series", ResultFormat.TABLE: "table"},
    # A PostgreSQL server costs the same busy or idle, and the ledger marts answer in
    # milliseconds: poll often, so an alert fires minutes after its condition holds.
    poll_interval="5m",
)
REDSHIFT = Flavour(
    name="redshift",
    datasource=DataSourceRef(type_val="grafana-redshift-datasource", uid=REDSHIFT_UID),
    sql_key="rawSQL",
    formats={ResultFormat.TIME_SERIES: 0, ResultFormat.TABLE: 1},
    # Redshift Serverless bills every wake-up for at least 60 s of its base capacity: a
    # 5-minute poll keeps it awake all month (issue 14 point 10, infra/README.md "Costs").
    poll_interval="1h",
)
FLAVOURS: tuple[Flavour, ...] = (POSTGRES, REDSHIFT)
