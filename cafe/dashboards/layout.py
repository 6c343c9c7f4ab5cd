"""Small helpers shared by the dashboard definitions: grid placement, ids, variables."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement

from cafe.dashboards.flavours import Flavour

# SQL fragments for the multi-value variables. `:sqlstring` quotes each value and doubles
# embedded quotes on every SQL datasource; `:singlequote` backslash-escapes instead, which
# PostgreSQL and Redshift would read as a literal backslash, and the bare `$branch` default
# format differs between the PostgreSQL datasource and the Redshift plugin.
SELECTED_BRANCHES = "${branch:sqlstring}"
SELECTED_CATEGORIES = "${product_category:sqlstring}"


class Placeable(Protocol):
    def id(self, id_val: int) -> Any: ...
    def grid_pos(self, grid_pos: dashboard_models.GridPos) -> Any: ...


P = TypeVar("P", bound=Placeable)


class Grid:
    """Hands out panel ids and explicit grid cells, so the layout reads top to bottom in code.

    Grafana's grid is 24 columns wide; the SDK's own auto-layout only flows panels left to
    right, which cannot express a row of unequal heights.
    """

    WIDTH = 24

    def __init__(self) -> None:
        self._next_id = 1
        self._y = 0
        self._x = 0
        self._row_height = 0

    def cell(self, w: int, h: int) -> tuple[int, dashboard_models.GridPos]:
        if self._x + w > self.WIDTH:
            self.new_row()
        position = dashboard_models.GridPos(h=h, w=w, x=self._x, y=self._y)
        self._x += w
        self._row_height = max(self._row_height, h)
        panel_id = self._next_id
        self._next_id += 1
        return panel_id, position

    def place(self, panel: P, w: int, h: int) -> P:
        """Give `panel` the next id and cell; SDK builders mutate in place and return self."""
        panel_id, position = self.cell(w, h)
        panel.id(panel_id)
        panel.grid_pos(position)
        return panel

    def new_row(self) -> None:
        self._y += self._row_height
        self._x = 0
        self._row_height = 0


def legend(
    placement: LegendPlacement = LegendPlacement.BOTTOM, table: bool = False
) -> common_builders.VizLegendOptions:
    return (
        common_builders.VizLegendOptions()
        .show_legend(True)
        .placement(placement)
        .display_mode(LegendDisplayMode.TABLE if table else LegendDisplayMode.LIST)
        .calcs([])
    )


def thresholds(*steps: tuple[float | None, str]) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard_models.ThresholdsMode.ABSOLUTE)
        .steps([dashboard_models.Threshold(value=value, color=color) for value, color in steps])
    )


def all_selected() -> dashboard_models.VariableOption:
    return dashboard_models.VariableOption(selected=True, text=["All"], value=["$__all"])


def sql_query_variable(
    flavour: Flavour, name: str, label: str, sql: str
) -> dashboard_builders.QueryVariable:
    """A multi-value variable with "All", its options read from a reporting mart."""
    return (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .datasource(flavour.datasource)
        .query(flavour.variable_query(sql))
        .definition(sql.strip())
        .multi(True)
        .include_all(True)
        .current(all_selected())
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
    )


def transformation(
    transformer: str, options: dict[str, Any]
) -> dashboard_models.DataTransformerConfig:
    return dashboard_models.DataTransformerConfig(id_val=transformer, options=options)
