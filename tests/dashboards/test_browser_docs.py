"""The dbt docs site, opened in headless chromium the way a business user opens it.

The site is the one `cafe docs --generate-only` wrote for the session's built warehouse, the
dashboards suite's marts (`built_docs`, tests/conftest.py), served over HTTP on 127.0.0.1 (from
`file://` it renders too, but chromium refuses dbt-docs' template URLs there with an error
per icon). The assertions read what renders — headings, description, columns, the lineage
graph's nodes and pixels — and compare it with the project's own manifest, so that a
rewording of the docs changes nothing here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import psycopg
import pytest
from playwright.sync_api import Page

from cafe.commands.build import STATIC_DOCS
from tests.browser import customer_names, personal_data_in, save_screenshot, serve_folder, watch
from tests.conftest import BuiltDocs

pytest_plugins = ["tests.browser"]
pytestmark = pytest.mark.slow  # the docs site (~4 s) and five pages: ~10 s beyond the marts

RENDER_TIMEOUT_MS = 15_000
# A reporting mart (what Grafana and business users read) and the core fact table.
MODELS = ("fct_transactions", "rpt_daily_branch_sales")
# The overview dbt ships when a project writes none of its own.
DEFAULT_OVERVIEW = "auto-generated documentation for your dbt project"
# The node layer of cytoscape's canvas: the lineage graph's dots, edges and labels.
LINEAGE_PIXELS = """() => {
    const canvas = document.querySelector('#cy canvas[data-id="layer2-node"]');
    if (!canvas || !canvas.width || !canvas.height) return 0;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let alpha = 3; alpha < data.length; alpha += 4) if (data[alpha]) painted++;
    return painted;
}"""
LINEAGE_NODES = """() => {
    const container = document.getElementById('cy');
    const graph = container && container._cyreg && container._cyreg.cy;
    return graph ? graph.nodes().filter(node => node.visible()).map(node => node.id()) : [];
}"""


@dataclass(frozen=True)
class DocsSite:
    url: str
    manifest: dict[str, Any]
    catalog: dict[str, Any]

    def model(self, name: str) -> dict[str, Any]:
        """The model called `name`; its latest version when it is versioned."""
        found = [
            node
            for node in self.manifest["nodes"].values()
            if node["resource_type"] == "model" and node["name"] == name
        ]
        assert found, f"no model {name} in the manifest"
        latest = [node for node in found if node.get("version") == node.get("latest_version")]
        chosen: dict[str, Any] = (latest or found)[0]
        return chosen

    def overview_markdown(self) -> str:
        project = self.manifest["metadata"].get("project_name")
        overviews = {
            doc["package_name"]: doc["block_contents"]
            for doc in self.manifest["docs"].values()
            if doc["name"] == "__overview__"
        }
        assert project in overviews, "the project writes no overview of its own (__overview__)"
        return str(overviews[project])


@pytest.fixture(scope="module")
def docs_site(built_docs: BuiltDocs) -> Iterator[DocsSite]:
    command = built_docs.command
    assert command.returncode == 0, f"cafe docs failed:\n{command.stdout[-4000:]}"
    manifest = json.loads((built_docs.folder / "manifest.json").read_text())
    catalog = json.loads((built_docs.folder / "catalog.json").read_text())
    with serve_folder(built_docs.folder) as base_url:
        yield DocsSite(f"{base_url}{STATIC_DOCS}", manifest, catalog)


@pytest.fixture(scope="module")
def names(marts_connection: psycopg.Connection[Any]) -> frozenset[str]:
    found = customer_names(marts_connection)
    assert found, "the marts hold customer names in raw: the privacy checks need some"
    return found


def _dbt_docs_template_url(url: str) -> bool:
    """dbt-docs' own unfilled templates: `<img src="{{ getIcon(...) }}">` in its model tree
    (fetched once before Angular fills it in) and a favicon link left as
    `${require('./assets/favicons/favicon.ico')}`. Requests for them 404 in every dbt docs
    site; they are not this project's pages failing to render."""
    text = unquote(url)
    return "{{" in text or "${require(" in text


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _normalised(text: str) -> str:
    return " ".join(text.split())


def _first_heading(markdown: str) -> str:
    heading = next((line for line in markdown.splitlines() if line.startswith("#")), None)
    assert heading, "the overview has no heading"
    return heading.lstrip("#").strip()


def _assert_private(page: Page, names: frozenset[str]) -> None:
    found = personal_data_in(page.inner_text("body"), names)
    assert not found, f"{page.url} shows {found}"


def test_overview_shows_the_business_text(
    docs_site: DocsSite, browser_page: Page, names: frozenset[str]
) -> None:
    problems = watch(browser_page, ignore_url=_dbt_docs_template_url)
    browser_page.goto(f"{docs_site.url}#!/overview")
    overview = browser_page.locator('[marked="overview_md"]')
    heading = overview.locator("h1, h2, h3").first
    heading.wait_for(timeout=RENDER_TIMEOUT_MS)

    assert heading.inner_text().strip() == _first_heading(docs_site.overview_markdown())
    text = overview.inner_text()
    assert DEFAULT_OVERVIEW not in text, "dbt's default overview instead of the project's own"
    assert len(_words(text)) >= 100, "an overview a business reader can learn from"
    assert overview.locator("h2, h3").count() >= 2, "sections a reader can scan"
    assert overview.evaluate("element => element.getBoundingClientRect().height") > 200
    _assert_private(browser_page, names)
    save_screenshot(browser_page, "docs-overview")
    assert not problems.all(), problems


def _rendered_columns(page: Page) -> dict[str, str]:
    rows = page.locator("column-details tr.column-row")
    rows.first.wait_for(timeout=RENDER_TIMEOUT_MS)
    return {
        row.locator("td").nth(0).inner_text().strip(): _normalised(
            row.locator("td").nth(2).text_content() or ""
        )
        for row in rows.all()
    }


def _assert_description_renders(page: Page, model: dict[str, Any]) -> None:
    description = page.locator("section:has(#description) .section-content")
    rendered = _words(description.inner_text())
    written = _words(model["description"])
    assert written, f"{model['name']} has no description"
    opening = written[: min(12, len(written))]
    assert any(rendered[i : i + len(opening)] == opening for i in range(len(rendered))), (
        f"{model['name']}: its description does not render ({' '.join(rendered[:20])}...)"
    )


def _assert_columns_render(page: Page, docs_site: DocsSite, model: dict[str, Any]) -> None:
    rendered = _rendered_columns(page)
    in_warehouse = {
        name.lower()
        for name in docs_site.catalog["nodes"].get(model["unique_id"], {}).get("columns", {})
    }
    assert in_warehouse, f"{model['name']} is not in the catalog: was it built?"
    missing = sorted(in_warehouse - set(rendered))
    assert not missing, f"{model['name']}: columns missing from the page: {missing}"
    undescribed = sorted(name for name, text in rendered.items() if not text)
    assert not undescribed, f"{model['name']}: columns without a description: {undescribed}"
    for name, column in model["columns"].items():
        written = _normalised(column["description"])
        assert rendered.get(name) == written, f"{model['name']}.{name}: description differs"


def _expected_lineage(docs_site: DocsSite, model: dict[str, Any]) -> set[str]:
    """The model, everything it is built from, and the models built from it."""
    children = docs_site.manifest["child_map"].get(model["unique_id"], [])
    return {
        model["unique_id"],
        *model["depends_on"]["nodes"],
        *(child for child in children if child.startswith("model.")),
    }


def _assert_lineage_renders(page: Page, docs_site: DocsSite, model: dict[str, Any]) -> None:
    page.locator('a[title="View Lineage Graph"]').click()
    page.wait_for_function(f"() => ({LINEAGE_NODES})().length > 1", timeout=RENDER_TIMEOUT_MS)
    shown = set(page.evaluate(LINEAGE_NODES))
    missing = _expected_lineage(docs_site, model) - shown
    assert not missing, f"{model['name']}: the lineage graph lacks {sorted(missing)}"
    graph = page.locator("#cy").bounding_box()
    assert graph and graph["width"] > 100 and graph["height"] > 100, "lineage panel not visible"
    page.wait_for_function(f"() => ({LINEAGE_PIXELS})() > 500", timeout=RENDER_TIMEOUT_MS)


@pytest.mark.parametrize("name", MODELS)
def test_model_page_shows_description_columns_and_lineage(
    docs_site: DocsSite, browser_page: Page, names: frozenset[str], name: str
) -> None:
    model = docs_site.model(name)
    problems = watch(browser_page, ignore_url=_dbt_docs_template_url)
    browser_page.goto(f"{docs_site.url}#!/model/{model['unique_id']}")
    browser_page.locator("h1", has_text=name).first.wait_for(timeout=RENDER_TIMEOUT_MS)

    _assert_description_renders(browser_page, model)
    _assert_columns_render(browser_page, docs_site, model)
    save_screenshot(browser_page, f"docs-{name}")
    _assert_lineage_renders(browser_page, docs_site, model)
    save_screenshot(browser_page, f"docs-{name}-lineage", whole_content=False)
    _assert_private(browser_page, names)
    assert not problems.all(), problems


def test_site_data_holds_no_customer_name_or_card_number(
    docs_site: DocsSite, names: frozenset[str]
) -> None:
    """Every page of the site is drawn from the manifest and catalog inlined in it."""
    for part in ("manifest", "catalog"):
        text = "\n".join(_strings(getattr(docs_site, part)))
        found = personal_data_in(text, names)
        assert not found, f"the docs site's {part} holds {found}"


def _strings(document: Any) -> Iterator[str]:
    """Every key and string value of a JSON document, numbers as written."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(document, list):
        for value in document:
            yield from _strings(value)
    elif document is not None:
        yield str(document)
