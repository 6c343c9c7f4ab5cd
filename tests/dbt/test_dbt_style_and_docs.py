"""`cafe docs` writes the docs site (sqlfluff runs in test_dbt_plain_dbt, as a person runs it)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from dbt_helpers import DbtWarehouse


def test_cafe_docs_writes_the_static_site(
    dbt_warehouse: DbtWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAFE_DATABASE_URL", dbt_warehouse.database_url)
    site = dbt_warehouse.target_dir / "static_index.html"
    site.unlink(missing_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "cafe.cli", "docs", "--generate-only"],
        env={**dbt_warehouse.env, "CAFE_DATABASE_URL": dbt_warehouse.database_url},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    html = site.read_text(encoding="utf-8")
    # The overview page for business users and a reporting mart's description are in it.
    assert "What the chain can learn here" in html
    assert "rpt_customers_weekly" in html
