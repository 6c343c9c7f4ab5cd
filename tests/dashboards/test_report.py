"""`cafe report` renders the business dashboard from the marts into HTML and SVG charts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from dashboard_helpers import Marts

from cafe.cli import main as cafe
from cafe.report import render_report
from loader.errors import CafeError


def test_report_has_every_panel(marts: Marts, tmp_path: Path) -> None:
    index = render_report(marts.settings, tmp_path / "report")
    page = index.read_text()
    for title in ("Revenue", "Transactions", "Average basket", "Active branches", "Products sold"):
        assert f"<div>{title}</div>" in page
    assert page.count("last 7 days") == 5, (
        "each headline compares the last week with the one before"
    )
    charts = sorted((tmp_path / "report").glob("*.svg"))
    assert [chart.name for chart in charts] == sorted(
        f"{name}.svg"
        for name in (
            "revenue-by-branch",
            "payment-mix",
            "top-products",
            "new-and-returning-customers",
            "hourly-footfall",
            "footfall-by-weekday-and-hour",
            "cohort-retention",
        )
    )
    for chart in charts:
        assert f'src="{chart.name}"' in page
        assert "No data" not in chart.read_text()


def test_report_command_writes_to_the_chosen_folder(
    marts: Marts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAFE_DATABASE_URL", marts.database_url)
    assert cafe(["report", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "index.html").is_file()


def test_report_on_an_empty_warehouse_says_what_to_do(
    fresh_database_url: str, marts: Marts, tmp_path: Path
) -> None:
    settings = dataclasses.replace(marts.settings, database_url=fresh_database_url)
    with pytest.raises(CafeError, match="cafe build"):
        render_report(settings, tmp_path)
    assert not any(tmp_path.iterdir()), "nothing is written when there is nothing to show"
