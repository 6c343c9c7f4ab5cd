"""The `cafe report` page, opened in headless chromium: what a manager without Grafana sees.

`render_report` writes the page for the dashboards suite's marts into a temporary folder,
served over HTTP on 127.0.0.1. Every chart of the "Café sales" dashboard must be on the
page as an image that loaded and takes real space on screen, under the page's title and
headings, with nothing broken in the console.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from dashboard_helpers import Marts
from playwright.sync_api import Page, ViewportSize

from cafe.dashboards import cafe_sales
from cafe.dashboards.flavours import POSTGRES
from cafe.dashboards.provisioning import dashboard_json
from cafe.report import render_report
from tests.browser import customer_names, personal_data_in, save_screenshot, serve_folder, watch

pytest_plugins = ["tests.browser"]

# Windows narrower than the widest chart (a small laptop, a tablet held upright): every chart
# must fit without sideways scrolling, shrunk rather than cut off.
WINDOWS: tuple[ViewportSize, ...] = (
    {"width": 1280, "height": 800},
    {"width": 768, "height": 1024},
)
MIN_CHART_SIDE_PX = 150
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"
IMAGES = """() => Array.from(document.images, image => ({
    alt: image.alt,
    src: image.getAttribute('src'),
    loaded: image.complete && image.naturalWidth > 0 && image.naturalHeight > 0,
}))"""


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return dashboard_json(cafe_sales.build, POSTGRES)


@pytest.fixture(scope="module")
def report_url(marts: Marts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    index = render_report(marts.settings, tmp_path_factory.mktemp("report"))
    with serve_folder(index.parent) as base_url:
        yield f"{base_url}{index.name}"


def _chart_titles(dashboard: dict[str, Any]) -> list[str]:
    return [panel["title"] for panel in dashboard["panels"] if panel["type"] != "stat"]


@pytest.mark.parametrize("window", WINDOWS, ids=lambda window: f"{window['width']}px")
def test_report_page_shows_every_chart_at_a_visible_size(
    browser_page: Page, report_url: str, dashboard: dict[str, Any], window: ViewportSize
) -> None:
    problems = watch(browser_page)
    browser_page.set_viewport_size(window)
    browser_page.goto(report_url, wait_until="load")

    charts = _chart_titles(dashboard)
    images = browser_page.evaluate(IMAGES)
    assert [image["alt"] for image in images] == charts, "one image per chart, in panel order"
    broken = [image["src"] for image in images if not image["loaded"]]
    assert not broken, f"broken images: {broken}"
    for title in charts:
        chart = browser_page.get_by_role("img", name=title, exact=True)
        assert chart.is_visible(), f"{title}: not visible"
        box = chart.bounding_box()
        assert box and min(box["width"], box["height"]) >= MIN_CHART_SIDE_PX, f"{title}: {box}"
        assert box["x"] >= 0 and box["x"] + box["width"] <= window["width"], (
            f"{title}: cut off by a {window['width']} px window"
        )
    assert browser_page.evaluate(NO_SIDEWAYS_SCROLL), f"scrolls sideways at {window['width']} px"
    save_screenshot(browser_page, f"report-{window['width']}px")
    assert not problems.all(), problems


def test_report_page_title_and_headings_render(
    browser_page: Page, report_url: str, dashboard: dict[str, Any]
) -> None:
    problems = watch(browser_page)
    browser_page.goto(report_url, wait_until="load")

    title = html.unescape(dashboard["title"])
    assert browser_page.title() == title
    heading = browser_page.get_by_role("heading", level=1)
    assert heading.inner_text() == title and heading.is_visible()
    # Each chart is headed by its title as text: found by a search or a screen reader.
    headings = browser_page.get_by_role("heading", level=2)
    assert headings.all_inner_texts() == _chart_titles(dashboard)
    assert all(heading.is_visible() for heading in headings.all())
    for panel in dashboard["panels"]:
        if panel["type"] == "stat":
            assert browser_page.get_by_text(panel["title"], exact=True).first.is_visible()
    assert not problems.all(), problems


def test_report_page_shows_no_customer_name_or_card_number(
    browser_page: Page, report_url: str, marts_connection: psycopg.Connection[Any]
) -> None:
    browser_page.goto(report_url, wait_until="load")
    found = personal_data_in(browser_page.inner_text("body"), customer_names(marts_connection))
    assert not found, f"the report shows {found}"
