"""The models follow the loader's line contract (loader/contract.py), its one home.

Any basket the contract accepts is taken apart by the models into exactly its items: a
seeded generator writes baskets from the contract's grammar with an unkind alphabet
(accents, `&`, apostrophes, commas and hyphens inside words, one to a hundred items, six
digit prices), keeps those `basket_problem` accepts, writes them into raw as the loader
would, and one dbt build must give every item its size, product, flavour and price, with
no unreadable item. The settings the models share with the loader agree with it.
"""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from dbt_helpers import assert_dbt_ok, load_files, private_database, run_dbt_captured

from cafe.dbt_project import dbt_project_dir, project_vars
from loader.contract import MAX_BASKET_ITEMS, REASON_FIELDS, basket_problem
from loader.settings import Settings

SEED = 20240401
BASKETS = 400
WORD_CHARACTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéüßøñÅ0123456789&'.()+/!-,"
KEY = "contract_03-04-2024_09-00-00.csv"

Item = tuple[str, str, str | None]  # size, product, flavour


def test_rejection_reason_fields_are_the_loaders() -> None:
    assert project_vars()["rejection_reason_fields"] == list(REASON_FIELDS)


def test_the_numbers_spine_covers_the_largest_basket_the_contract_allows() -> None:
    macro = (dbt_project_dir() / "macros" / "numbers.sql").read_text()
    digits = re.search(r"numbers_spine_digits\(\) -%\}\s*\{\{ return\((\d+)\) \}\}", macro)
    assert digits, "numbers_spine_digits() must return a literal"
    assert 10 ** int(digits[1]) >= MAX_BASKET_ITEMS


def _word(rng: random.Random) -> str:
    """A word of the grammar: no space, not a lone dash, not ending with a comma."""
    word = "".join(rng.choice(WORD_CHARACTERS) for _ in range(rng.randint(1, 10)))
    return word.rstrip(",") + "x" if word.endswith(",") or word == "-" else word


def _name(rng: random.Random) -> str:
    return " ".join(_word(rng) for _ in range(rng.randint(1, 3)))


def _price(rng: random.Random) -> str:
    """A positive price of up to six digits and two decimals."""
    whole = str(rng.randint(0, 10 ** rng.randint(1, 6) - 1))
    decimals = rng.choice(["", "." + str(rng.randint(0, 9)), f".{rng.randint(0, 99):02d}"])
    return whole + decimals if Decimal(whole + decimals) > 0 else "0.01"


def _basket(rng: random.Random) -> str:
    items = rng.choice([1, 2, 3, 5, 8, rng.randint(1, MAX_BASKET_ITEMS)])
    parts = []
    for _ in range(items):
        flavour = f" - {_name(rng)}" if rng.random() < 0.4 else ""
        parts.append(f"{_word(rng)} {_name(rng)}{flavour} - {_price(rng)}")
    if rng.random() < 0.3:  # the same product twice in a basket
        parts.append(parts[0])
    return ", ".join(parts)


def _expected_lines(basket: str) -> dict[Item, tuple[int, Decimal]]:
    """The grammar read in Python: size, product, flavour and price of every item."""
    quantities: Counter[Item] = Counter()
    amounts: dict[Item, Decimal] = {}
    for item in basket.split(", "):
        head, _, price = item.rpartition(" - ")
        size, _, described = head.partition(" ")
        product, _, flavour = described.partition(" - ")
        key = (size, product, flavour or None)
        quantities[key] += 1
        amounts[key] = amounts.get(key, Decimal(0)) + Decimal(price)
    return {key: (quantities[key], amounts[key]) for key in quantities}


@pytest.fixture(scope="module")
def accepted_baskets() -> list[str]:
    rng = random.Random(SEED)
    baskets = [_basket(rng) for _ in range(BASKETS)]
    accepted = [basket for basket in baskets if basket_problem(basket) is None]
    assert len(accepted) > BASKETS * 0.9, "the generator should write contract baskets"
    assert max(len(basket.split(", ")) for basket in accepted) > 50
    return accepted


@pytest.fixture(scope="module")
def built(
    stack: Settings, samples_dir: Path, accepted_baskets: list[str]
) -> Iterator[tuple[str, list[str]]]:
    with private_database(stack, "contract") as settings:
        assert settings.database_url
        load_files(settings, sorted(samples_dir.glob("*.csv"))[:1])  # raw, as a loader makes it
        checksum = hashlib.sha256(KEY.encode()).hexdigest()
        with psycopg.connect(settings.database_url) as connection:
            with connection.cursor() as cursor:
                cursor.executemany(
                    "insert into raw.transactions (source_key, line_number, file_checksum,"
                    " transaction_date, branch_name, basket, total_amount, payment_type)"
                    " values (%s, %s, %s, '03/04/2024 10:00', 'Contract', %s, 1, 'CASH')",
                    [
                        (KEY, line, checksum, basket)
                        for line, basket in enumerate(accepted_baskets, start=2)
                    ],
                )
            connection.execute(
                "insert into raw.loaded_files (load_id, source_key, file_checksum, status,"
                " is_current, rows_read, rows_loaded, rows_rejected, started_at, finished_at)"
                " values (%s, %s, %s, 'loaded', true, %s, %s, 0, now(), now())",
                (str(uuid.uuid4()), KEY, checksum, len(accepted_baskets), len(accepted_baskets)),
            )
        selection = ("--select", "+fct_transaction_items", "+fct_transactions", "+dim_products")
        assert_dbt_ok(run_dbt_captured(settings, "build", *selection))
        yield settings.database_url, accepted_baskets


@pytest.mark.slow
def test_every_accepted_basket_builds_into_exactly_its_items(
    built: tuple[str, list[str]],
) -> None:
    database_url, baskets = built
    with psycopg.connect(database_url, autocommit=True) as connection:
        transactions = {
            row[0]: (row[1], row[2])
            for row in connection.execute(
                "select line_number, item_count, unreadable_item_count"
                " from marts.fct_transactions where source_key = %s",
                (KEY,),
            )
        }
        found: dict[int, dict[Item, tuple[int, Decimal]]] = {}
        for line, size, product, flavour, quantity, amount in connection.execute(
            "select t.line_number, p.size, p.base_product_name, p.flavour, i.quantity,"
            " i.line_amount from marts.fct_transaction_items as i"
            " join marts.fct_transactions as t on t.transaction_id = i.transaction_id"
            " join marts.dim_products as p on p.product_key = i.product_key"
            " where t.source_key = %s",
            (KEY,),
        ):
            found.setdefault(line, {})[(size, product, flavour)] = (quantity, amount)
    for line, basket in enumerate(baskets, start=2):
        items = len(basket.split(", "))
        assert transactions[line] == (items, 0), basket
        assert found[line] == _expected_lines(basket), basket
