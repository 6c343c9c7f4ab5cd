"""sqlfluff (dbt templater) lints the models clean, and `cafe docs` writes the docs site."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DbtWarehouse

from cafe.dbt_project import dbt_project_dir


def test_models_pass_sqlfluff(dbt_warehouse: DbtWarehouse) -> None:
    sqlfluff = Path(sys.executable).parent / "sqlfluff"
    result = subprocess.run(
        [str(sqlfluff), "lint", "models", "--nocolor", "--processes", "2"],
        cwd=dbt_project_dir(),
        env=dbt_warehouse.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_cafe_docs_writes_the_static_site(
    dbt_warehouse: DbtWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAFE_DATABASE_URL", dbt_warehouse.database_url)
    site = dbt_project_dir() / "target" / "static_index.html"
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
