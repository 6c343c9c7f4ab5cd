"""The loader's share of the privacy lifecycle, on the real PostgreSQL and through the
Redshift writer (its SQL run by the stand-in Data API of test_loader_redshift):

* during a rotation's overlap window each card is hashed with both keys and the two hashes
  are linked in `raw.card_links`, once per card, never with the card itself;
* a refused line keeps the hash of the card it holds, although its text is masked;
* a key the warehouse records as rotated away from, or retired, is refused before anything
  is written (the key ring in use is out of date).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from loader.aws import aws_client
from loader.hashing import CardKey, CardKeySuperseded, hash_card, key_fingerprint
from loader.ledger import Status
from loader.schema import ensure_schema
from loader.service import load_path
from loader.settings import Settings
from loader.writers.postgres import PostgresWarehouse
from loader.writers.redshift import RedshiftWarehouse
from tests.integration.test_loader_redshift import (  # the Data API stand-in
    PostgresDataApi,
    warehouse_for,
)

OLD = CardKey(b"privacy-loader-old-key-0123456789", "test-v1")
NEW = CardKey(b"privacy-loader-new-key-0123456789", "test-v2")
HEADER = "date,location,name,basket,total,payment_type,card_number"
ANN = "4111111111111111"
BO = "5500005555555559"
CY = "4012888888881881"


# Redshift's getdate(), which the writer's statements call.
GETDATE = (
    "create or replace function getdate() returns timestamp language sql"
    " as $$ select clock_timestamp() at time zone 'UTC' $$"
)


@pytest.fixture
def redshift_db(fresh_database_url: str) -> str:
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        ensure_schema(connection)
        connection.execute(GETDATE)
    return fresh_database_url


@pytest.fixture
def data_api(stack: Settings, redshift_db: str) -> PostgresDataApi:
    return PostgresDataApi(redshift_db, aws_client(stack, "s3"), stack.landing_bucket)


def export(path: Path, lines: list[str]) -> Path:
    path.write_text("\r\n".join([HEADER, *lines]) + "\r\n", newline="")
    return path


def lines() -> list[str]:
    return [
        f"01/03/2025 09:00,Leeds,Ann,Regular Latte - 2.15,2.15,CARD,{ANN}",
        f"01/03/2025 09:05,Leeds,Ann,Large Latte - 2.45,2.45,CARD,{ANN.replace('1111', '1111 ')}",
        f"01/03/2025 09:10,Leeds,Bo,Regular Mocha - 2.30,2.30,CARD,{BO}",
        "01/03/2025 09:15,Leeds,Dee,Regular Tea - 1.20,1.20,CASH,",
        # refused: a cash line with a card number; a name holding one; a malformed line
        f"01/03/2025 09:20,Leeds,Cy,Regular Tea - 1.20,1.20,CASH,{CY}",
        f"01/03/2025 09:25,Leeds,card {CY.replace('8888', '8888.')},Tea - 1.20,1.20,CASH,",
        f"01/03/2025 09:30,Leeds,Cy,Regular Tea - 1.20,1.20,CARD,{CY},extra",
    ]


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchall()


def assert_linked_and_hashed(url: str) -> None:
    links = rows(
        url,
        "select card_hash, card_key_version, previous_card_hash, previous_key_version,"
        " linked_at is not null from raw.card_links order by card_hash",
    )
    expected = sorted(
        (hash_card(NEW, card), "test-v2", hash_card(OLD, card), "test-v1", True)
        for card in (ANN, BO)
    )
    assert links == expected
    assert rows(url, "select distinct card_key_version from raw.transactions") in (
        [("test-v2",), (None,)],
        [(None,), ("test-v2",)],
    )
    refused = rows(
        url,
        "select line_number, card_hash, card_key_version, raw_line from raw.rejected_rows"
        " order by line_number",
    )
    assert [(line, card_hash, version) for line, card_hash, version, _ in refused] == [
        (6, hash_card(NEW, CY), "test-v2"),
        (7, hash_card(NEW, CY), "test-v2"),
        (8, hash_card(NEW, CY), "test-v2"),
    ]
    for *_, raw_line in refused:
        assert CY not in raw_line.replace(".", "")


def test_postgres_links_both_hashes_of_each_card_and_hashes_refused_lines(
    fresh_database_url: str, tmp_path: Path
) -> None:
    warehouse = PostgresWarehouse(fresh_database_url)
    # The previous key was in use before the rotation: its fingerprint is on record.
    first = export(tmp_path / "leeds_28-02-2025_18-00-00.csv", lines()[3:4])
    assert load_path(first, first.name, warehouse=warehouse, key=OLD).status is Status.LOADED
    path = export(tmp_path / "leeds_01-03-2025_18-00-00.csv", lines())
    result = load_path(path, path.name, warehouse=warehouse, key=NEW, link_key=OLD)
    assert (result.status, result.counts.loaded, result.counts.rejected) == (Status.LOADED, 4, 3)
    assert_linked_and_hashed(fresh_database_url)
    # Another file with the same cards adds no second link.
    again = export(tmp_path / "leeds_02-03-2025_18-00-00.csv", lines()[:3])
    assert load_path(again, again.name, warehouse=warehouse, key=NEW, link_key=OLD).status is (
        Status.LOADED
    )
    assert rows(fresh_database_url, "select count(*) from raw.card_links") == [(2,)]


def test_without_an_overlap_window_nothing_is_linked(
    fresh_database_url: str, tmp_path: Path
) -> None:
    path = export(tmp_path / "leeds_01-03-2025_18-00-00.csv", lines())
    load_path(path, path.name, warehouse=PostgresWarehouse(fresh_database_url), key=NEW)
    assert rows(fresh_database_url, "select count(*) from raw.card_links") == [(0,)]


def test_redshift_stages_links_and_refused_line_hashes(
    data_api: PostgresDataApi, redshift_db: str, tmp_path: Path
) -> None:
    warehouse: RedshiftWarehouse = warehouse_for(data_api)
    first = export(tmp_path / "leeds_28-02-2025_18-00-00.csv", lines()[3:4])
    assert load_path(first, first.name, warehouse=warehouse, key=OLD).status is Status.LOADED
    path = export(tmp_path / "leeds_01-03-2025_18-00-00.csv", lines())
    result = load_path(path, path.name, warehouse=warehouse, key=NEW, link_key=OLD)
    assert result.status is Status.LOADED, result.error_text
    assert_linked_and_hashed(redshift_db)
    again = export(tmp_path / "leeds_02-03-2025_18-00-00.csv", lines()[:3])
    load_path(again, again.name, warehouse=warehouse, key=NEW, link_key=OLD)
    assert rows(redshift_db, "select count(*) from raw.card_links") == [(2,)]
    for name, body in data_api.staged.items():
        assert ANN.encode() not in body and CY.encode() not in body, name


@pytest.mark.parametrize(
    ("update", "role"),
    [
        ("overlap_ends_at = now()", "current"),
        ("retired_at = now()", "current"),
        ("retired_at = now()", "link"),
    ],
)
def test_a_key_rotated_away_from_or_retired_is_refused_before_anything_is_written(
    fresh_database_url: str, tmp_path: Path, update: str, role: str
) -> None:
    with psycopg.connect(fresh_database_url) as connection:
        ensure_schema(connection)
        for key in (OLD, NEW):
            connection.execute(
                "insert into raw.card_keys (key_version, fingerprint) values (%s, %s)",
                (key.version, key_fingerprint(key)),
            )
        target = OLD if role == "link" else NEW
        connection.execute(
            f"update raw.card_keys set {update} where key_version = %s",
            (target.version,),
        )
    path = export(tmp_path / "leeds_01-03-2025_18-00-00.csv", lines())
    with pytest.raises(CardKeySuperseded, match="key ring in use"):
        load_path(
            path, path.name, warehouse=PostgresWarehouse(fresh_database_url), key=NEW, link_key=OLD
        )
    assert rows(fresh_database_url, "select count(*) from raw.loaded_files") == [(0,)]
    assert rows(fresh_database_url, "select count(*) from raw.transactions") == [(0,)]
