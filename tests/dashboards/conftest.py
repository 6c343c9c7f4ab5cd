"""The dashboards suite's view of the session's built warehouse (tests/conftest.py).

`marts` is `built_warehouse`: the real exports, three weeks of generated trade for three
branches (spanning the switch to British Summer Time, so UTC and café-local days differ),
a file with broken lines, one that is not text, one with an unknown column, a late older
version and a dead load attempt, all through the loader's own code path; then one
`dbt build` with its tests and one `dbt source freshness`, so Pipeline health has every
kind of history to show.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from dashboard_helpers import Marts

from tests.conftest import BuiltWarehouse


@pytest.fixture(scope="session")
def marts(built_warehouse: BuiltWarehouse) -> Marts:
    """The built warehouse; its settings' reporting URL reads the same database."""
    return Marts(
        built_warehouse.database_url,
        built_warehouse.settings,
        built_warehouse.broken_lines,
        built_warehouse.broken_branch,
    )


@pytest.fixture(scope="session")
def marts_connection(marts: Marts) -> Iterator[psycopg.Connection[object]]:
    with psycopg.connect(marts.database_url, autocommit=True) as connection:
        yield connection
