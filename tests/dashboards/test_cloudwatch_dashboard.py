"""The CloudWatch operations dashboard (`OperationsDashboard` in infra/templates/pipeline.yaml)
is valid dashboard JSON and shows every metric the loader publishes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]
from dashboard_helpers import ROOT, loader_metric_names

from cafe.dashboards.pipeline_health import LOADER_METRICS_NAMESPACE, LOADER_SERVICE

PIPELINE = ROOT / "infra" / "templates" / "pipeline.yaml"
_SUBSTITUTION = re.compile(r"\$\{[^}]+\}")


@pytest.fixture(scope="module")
def body() -> dict[str, Any]:
    template = cfn_yaml.load(str(PIPELINE))
    dashboard = template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]
    text = dashboard["Fn::Sub"]
    assert isinstance(text, str)
    # Every ${...} of this body sits inside a JSON string: any text stands in for it.
    parsed: dict[str, Any] = json.loads(_SUBSTITUTION.sub("substituted", text))
    return parsed


def _metrics(widget: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(namespace, metric, dimensions) of each line, CloudWatch's "." and "..." expanded."""
    lines: list[tuple[str, str, tuple[str, ...]]] = []
    previous: list[str] = []
    for line in widget["properties"].get("metrics", []):
        fields = [field for field in line if isinstance(field, str)]
        if fields == ["..."]:
            fields = previous
        expanded = [
            previous[index] if field == "." and index < len(previous) else field
            for index, field in enumerate(fields)
        ]
        lines.append((expanded[0], expanded[1], tuple(expanded[2:])))
        previous = expanded
    return lines


def test_every_metric_the_loader_publishes_is_on_the_dashboard(body: dict[str, Any]) -> None:
    shown = {
        metric
        for widget in body["widgets"]
        if widget["type"] == "metric"
        for namespace, metric, dimensions in _metrics(widget)
        if namespace == LOADER_METRICS_NAMESPACE and dimensions == ("service", LOADER_SERVICE)
    }
    assert loader_metric_names() <= shown, loader_metric_names() - shown
    assert {"StaleVersionsSkipped", "LoadsDeferred"} <= shown


def test_widgets_fit_the_grid_without_overlapping(body: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for widget in body["widgets"]:
        title = widget["properties"]["title"]
        assert widget["x"] + widget["width"] <= 24, title
        for x in range(widget["x"], widget["x"] + widget["width"]):
            for y in range(widget["y"], widget["y"] + widget["height"]):
                assert (x, y) not in cells, f"{title} overlaps {cells[(x, y)]}"
                cells[(x, y)] = title
