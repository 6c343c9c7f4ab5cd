"""The incremental facts follow the customers of rows they already built.

Two ways the customer of an unchanged file's rows changes after a build: an erasure clears
their card hash (the ledger's `rows_revised_at`), and a key rotation's link makes a hash
that was its own customer part of an older one (a file loaded during the window without
the previous key, then a file that links the two). Either way the next incremental build
rebuilds those files, so the facts end where a full rebuild ends and every fact's customer
is in `dim_customers`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dbt_helpers import assert_dbt_ok, run_dbt_captured

from loader.hashing import CardKey, CardKeys, hash_card
from loader.privacy.erasure import forget_card
from loader.privacy.store import PostgresStore
from loader.service import load_path
from loader.settings import Settings
from loader.writers.postgres import PostgresWarehouse

pytestmark = pytest.mark.slow  # dbt builds on a database of its own

OLD = CardKey(b"privacy-incremental-old-key-01234", "test-v1")
NEW = CardKey(b"privacy-incremental-new-key-01234", "test-v2")
HEADER = "date,location,name,basket,total,payment_type,card_number"
ANN, BO = "4111111111111111", "5500005555555559"
FACTS = "marts.fct_transactions"
MODELS = ("+fct_transactions", "+dim_customers")


def export(folder: Path, day: str, cards: list[str]) -> Path:
    path = folder / f"leeds_{day}_18-00-00.csv"
    date = day.replace("-", "/")
    lines = [
        f"{date} 09:{minute:02d},Leeds,N,Regular Latte - 2.15,2.15,CARD,{card}"
        for minute, card in enumerate(cards)
    ]
    path.write_text("\r\n".join([HEADER, *lines]) + "\r\n", newline="")
    return path


def facts(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(
            f"select transaction_id, customer_key, total_amount from {FACTS} order by 1"
        ).fetchall()


def orphans(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            f"select count(*) from {FACTS} as facts where customer_key is not null and not exists"
            " (select 1 from marts.dim_customers as customers"
            " where customers.customer_key = facts.customer_key)"
        ).fetchone()
    return int(row[0]) if row else -1


def test_links_and_erasures_reach_facts_already_built(
    stack: Settings, fresh_database_url: str, tmp_path: Path
) -> None:
    url = fresh_database_url
    settings = dataclasses.replace(stack, database_url=url)
    warehouse = PostgresWarehouse(url)

    def build(*extra: str) -> None:
        assert_dbt_ok(run_dbt_captured(settings, "run", "--select", *MODELS, *extra))

    first = export(tmp_path, "06-01-2025", [ANN, BO])
    load_path(first, first.name, warehouse=warehouse, key=OLD)
    # Loaded during the window without the previous key: Ann's new hash is a customer.
    unlinked = export(tmp_path, "13-01-2025", [ANN])
    load_path(unlinked, unlinked.name, warehouse=warehouse, key=NEW)
    build()
    assert {key for _, key, _ in facts(url)} == {
        hash_card(OLD, ANN),
        hash_card(OLD, BO),
        hash_card(NEW, ANN),
    }

    # A later file links Ann's two hashes: the built file of the 13th must follow.
    linking = export(tmp_path, "20-01-2025", [ANN])
    load_path(linking, linking.name, warehouse=warehouse, key=NEW, link_key=OLD)
    build()
    assert {key for _, key, _ in facts(url)} == {hash_card(OLD, ANN), hash_card(OLD, BO)}
    assert orphans(url) == 0

    erasure = forget_card(PostgresStore(url), CardKeys(NEW, OLD), ANN, reason="asked")
    assert erasure.counts.transactions == 3
    build()
    incremental = facts(url)
    assert {key for _, key, _ in incremental} == {None, hash_card(OLD, BO)}
    assert orphans(url) == 0
    build("--full-refresh")
    assert facts(url) == incremental
