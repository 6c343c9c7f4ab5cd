"""`cafe docs` writes the docs site (sqlfluff runs in test_dbt_plain_dbt, as a person runs it)."""

from __future__ import annotations

from dbt_helpers import DbtWarehouse

from cafe.commands.build import STATIC_DOCS
from tests.conftest import BuiltDocs


def test_cafe_docs_writes_the_static_site(
    built_docs: BuiltDocs, dbt_warehouse: DbtWarehouse
) -> None:
    # The session's one run of `cafe docs --generate-only` (tests/conftest.py), whose site
    # the browser tests of tests/dashboards open.
    command = built_docs.command
    assert command.returncode == 0, command.stdout[-4000:] + command.stderr[-2000:]
    assert f"docs site: {dbt_warehouse.target_dir / STATIC_DOCS}" in command.stdout
    html = (built_docs.folder / STATIC_DOCS).read_text(encoding="utf-8")
    # The overview page for business users and a reporting mart's description are in it.
    assert "What the chain can learn here" in html
    assert "rpt_customers_weekly" in html
