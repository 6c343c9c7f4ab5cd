"""The dbt suite's view of the session's built warehouse, and helpers for private builds.

`dbt_warehouse` is `built_warehouse` of tests/conftest.py (loaded once, `cafe build` run
once through the command line, which also keeps the build's manifest for `--state`), as
the dbt tests read it. Tests that need their own history (incremental builds, odd raw rows,
a racing load) use `load_files` and dbt on a `private_database` or `fresh_database_url`
instead; tests that change the project work on a copy of it (`copy_project`). Test modules
import those helpers from `dbt_helpers`, never from a conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from dbt_helpers import DbtWarehouse

from tests.conftest import BuiltWarehouse


@pytest.fixture(scope="session")
def dbt_warehouse(built_warehouse: BuiltWarehouse) -> DbtWarehouse:
    """The session's built warehouse: every model built and every test green."""
    return DbtWarehouse(
        built_warehouse.database_url,
        built_warehouse.settings,
        built_warehouse.env,
        built_warehouse.target_dir,
        built_warehouse.kept_state,
    )


@pytest.fixture
def warehouse_connection(
    dbt_warehouse: DbtWarehouse,
) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    with psycopg.connect(dbt_warehouse.database_url, autocommit=True) as connection:
        yield connection
