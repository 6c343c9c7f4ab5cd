"""Warehouse writers: PostgreSQL (COPY FROM STDIN) and Redshift (Parquet + Data API COPY)."""

from __future__ import annotations

from loader.batches import Warehouse
from loader.errors import ConfigurationError
from loader.settings import Settings
from loader.writers.postgres import PostgresWarehouse
from loader.writers.redshift import RedshiftWarehouse


def open_warehouse(settings: Settings) -> Warehouse:
    """The writer for the configured warehouse (`CAFE_WAREHOUSE`)."""
    if settings.warehouse == "postgres":
        if not settings.database_url:
            raise ConfigurationError("no database: run `cafe up` or set CAFE_DATABASE_URL")
        return PostgresWarehouse(settings.database_url)
    if settings.warehouse == "redshift":
        return RedshiftWarehouse.from_settings(settings)
    raise ConfigurationError(
        f"CAFE_WAREHOUSE must be postgres or redshift, not {settings.warehouse!r}"
    )
