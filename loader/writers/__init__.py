"""Warehouse writers: PostgreSQL (COPY FROM STDIN) and Redshift (Parquet + Data API COPY)."""

from __future__ import annotations

from loader.batches import NO_DEADLINE, Deadline, Warehouse
from loader.errors import ConfigurationError
from loader.settings import Settings
from loader.writers.postgres import PostgresWarehouse
from loader.writers.redshift import RedshiftWarehouse


def open_warehouse(settings: Settings, *, deadline: Deadline = NO_DEADLINE) -> Warehouse:
    """The writer for the configured warehouse (`CAFE_WAREHOUSE`).

    `deadline`: when the caller (a Lambda invocation) needs its answer; work that would
    outlive it is cancelled.
    """
    if settings.warehouse == "postgres":
        if not settings.database_url:
            raise ConfigurationError("no database: run `cafe up` or set CAFE_DATABASE_URL")
        return PostgresWarehouse(settings.database_url, deadline=deadline)
    if settings.warehouse == "redshift":
        return RedshiftWarehouse.from_settings(settings, deadline=deadline)
    raise ConfigurationError(
        f"CAFE_WAREHOUSE must be postgres or redshift, not {settings.warehouse!r}"
    )
