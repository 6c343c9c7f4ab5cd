"""Issue 15 on the real local stack: every `cafe generate --variant` through the loader into
the session's PostgreSQL; loadable variants store the very same sales as the real format,
refused ones store nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import psycopg
import pytest

from cafe.samples import Variant, generate_branch_day
from loader.hashing import CardKey
from loader.ledger import Status
from loader.service import load_path
from loader.writers.postgres import PostgresWarehouse
from tests.privacy_scan import scan_database

KEY = CardKey(b"format-variants-test-key-0123456789", "test-v1")
LOADABLE = (
    Variant.REORDERED,
    Variant.EXTRA_COLUMN,
    Variant.NO_CUSTOMER_COLUMNS,
    Variant.UTF16,
    Variant.EXCEL,
)


def _sales(url: str, key: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(
            "select line_number, transaction_date, branch_name, customer_name, basket,"
            " total_amount, payment_type, card_hash from raw.transactions"
            " where source_key = %s order by line_number",
            (key,),
        ).fetchall()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[Variant, Path]:
    out = tmp_path_factory.mktemp("variants")
    return {
        variant: generate_branch_day(
            out / variant.value, "Whitby", date(2024, 4, 2), seed=5, variant=variant
        ).path
        for variant in Variant
    }


def test_every_variant_on_the_real_stack(
    fresh_database_url: str, files: dict[Variant, Path]
) -> None:
    warehouse = PostgresWarehouse(fresh_database_url)
    results = {
        variant: load_path(path, f"{variant.value}/{path.name}", warehouse=warehouse, key=KEY)
        for variant, path in files.items()
    }
    standard = _sales(fresh_database_url, f"standard/{files[Variant.STANDARD].name}")
    assert results[Variant.STANDARD].status is Status.LOADED
    assert len(standard) == results[Variant.STANDARD].counts.read > 100
    anonymous = [(*row[:3], None, *row[4:7], None) for row in standard]
    for variant in LOADABLE:
        result = results[variant]
        assert (result.status, result.counts.rejected) == (Status.LOADED, 0), variant
        stored = _sales(fresh_database_url, f"{variant.value}/{files[variant].name}")
        expected = anonymous if variant is Variant.NO_CUSTOMER_COLUMNS else standard
        assert stored == expected, variant
    for variant, complaint in (
        (Variant.MISSING_BASKET, "required columns missing: basket"),
        (Variant.FOREIGN, "the file is not a till export"),
    ):
        result = results[variant]
        assert result.status is Status.REFUSED, variant
        assert result.error_text is not None and complaint in result.error_text
        assert _sales(fresh_database_url, f"{variant.value}/{files[variant].name}") == []
    with psycopg.connect(fresh_database_url) as connection:
        unbalanced = connection.execute(
            "select count(*) from raw.loaded_files"
            " where status <> 'started' and rows_read <> rows_loaded + rows_rejected"
        ).fetchone()
    assert unbalanced == (0,)


def test_no_variant_leaks_a_card_number(
    fresh_database_url: str, files: dict[Variant, Path]
) -> None:
    warehouse = PostgresWarehouse(fresh_database_url)
    cards: set[str] = set()
    for variant, path in files.items():
        load_path(path, f"{variant.value}/{path.name}", warehouse=warehouse, key=KEY)
        text = path.read_bytes().decode("utf-16" if variant is Variant.UTF16 else "utf-8-sig")
        words = (word.strip('"') for word in text.replace(",", " ").split())
        cards.update(word for word in words if len(word) == 16 and word.isdigit())
    assert len(cards) > 50
    assert [str(f) for f in scan_database(fresh_database_url, ("raw",), known_cards=cards)] == []
