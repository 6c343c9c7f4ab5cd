"""The fast block check (each column once per distinct value) against the rule book.

`validate_block` checks dates once per distinct day, branches and payment types through the
rule book's own functions once per distinct value, and baskets item by item; these tests
hold it to `validate_fields` where those shortcuts could go wrong: values repeated across
rows with different neighbours, the day of the load's ceiling, card numbers spread over
basket items, and large blocks.
"""

from __future__ import annotations

import random
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.contract import LineRules
from loader.validation import COLUMNS, AcceptedRow, RejectedRow, validate_block, validate_fields

# A load whose clock reads 02/06/2024 09:30: its ceiling is 03/06/2024 09:30.
RULES = LineRules(date(2000, 1, 1), datetime(2024, 6, 3, 9, 30), Decimal("10000.00"))
GOOD = (
    "25/08/2021 09:00",
    "Chesterfield",
    "Ann Lee",
    "Large Latte - 2.45, Regular Flavoured latte - Hazelnut - 2.55",
    "5",
    "CARD",
    "4929123456789012",
)


def block_of(rows: list[tuple[str, ...]]) -> pa.Table:
    return pa.table(
        {
            **{
                name: pa.array([row[index] for row in rows], pa.string())
                for index, name in enumerate(COLUMNS)
            },
            "line_number": pa.array(range(2, len(rows) + 2), pa.int64()),
        }
    )


def assert_agrees(rows: list[tuple[str, ...]]) -> None:
    """The block's verdict on every row, and every accepted value, is the rule book's."""
    result = validate_block(block_of(rows), RULES)
    expected = {index + 2: validate_fields(index + 2, row, RULES) for index, row in enumerate(rows)}
    accepted = {row["line_number"]: row for row in result.accepted.to_pylist()}
    assert set(accepted) == {
        line for line, checked in expected.items() if isinstance(checked, AcceptedRow)
    }
    for line, row in accepted.items():
        rule_book = expected[line]
        assert isinstance(rule_book, AcceptedRow)
        assert row == {
            "line_number": line,
            "transaction_date": rule_book.transaction_date,
            "branch_name": rule_book.branch_name,
            "customer_name": rule_book.customer_name,
            "basket": rule_book.basket,
            "total_amount": rule_book.total_amount,
            "payment_type": rule_book.payment_type,
            "card_digits": rule_book.card_digits,
        }
    assert result.rejected == [c for c in expected.values() if isinstance(c, RejectedRow)]


def with_(**changes: str) -> tuple[str, ...]:
    row = dict(zip(COLUMNS, GOOD, strict=True))
    row.update(changes)
    return tuple(row[name] for name in COLUMNS)


def test_the_day_of_the_ceiling_is_decided_minute_by_minute() -> None:
    rows = [
        with_(date=f"03/06/2024 {time}") for time in ("00:00", "09:29", "09:30", "09:31", "23:59")
    ] + [
        with_(date="02/06/2024 23:59"),
        with_(date="04/06/2024 00:00"),
        with_(date="29/02/2024 12:00"),
        with_(date="29/02/2023 12:00"),
        with_(date="31/12/1999 23:59"),
        with_(date="01/01/2000 00:00"),
        with_(date="25/08/2021 24:00"),
        with_(date="25/08/2021 09:60"),
        with_(date=" 25/08/2021 09:00"),
    ]
    result = validate_block(block_of(rows), RULES)
    accepted = sorted(result.accepted.column("line_number").to_pylist())
    assert accepted == [2, 3, 4, 7, 9, 12, 15]
    assert_agrees(rows)


def test_a_card_number_spread_over_basket_items_or_names_is_caught() -> None:
    rows = [
        with_(basket="Large Latte 4111 1111 - 2.45, 1111 1111 1111 Tea - 1.00"),
        with_(basket="Large Latte 4111-1111 - 2.45, Regular Tea 1111 - 1.00"),
        with_(name="Ann 4111 1111 1111 1111"),
        with_(name="Ann\u00a0Lee"),
        with_(name="Ann Lee\u2003"),
        with_(basket="Large Latte - 2.45,Regular Tea - 1.00"),  # one item, flavoured
        with_(basket="Large Latte - 2.45, "),
        with_(basket="Large Latte - 2.45, , Regular Tea - 1.00"),
        with_(basket="Large Latte\x00 - 2.45"),
    ]
    result = validate_block(block_of(rows), RULES)
    assert sorted(result.accepted.column("line_number").to_pylist()) == [3, 5, 6, 7]
    assert_agrees(rows)


def test_payment_types_and_branches_are_normalised_as_the_rule_book_does() -> None:
    rows = [
        with_(payment_type="card"),
        with_(payment_type=" Card "),
        with_(payment_type="CA\u017fH", card_number=""),  # a long s upper-cases to S
        with_(payment_type="CARD\x00"),
        with_(location="  Chesterfield\u00a0"),
        with_(location="\u2003"),
        with_(location="Branch 4111111111111111"),
        with_(card_number=" 4929-1234-5678-9012 "),
        with_(card_number="4929\u00a01234\u00a05678\u00a09012"),
        with_(payment_type="CASH", card_number=" "),
    ]
    assert_agrees(rows)


def test_a_large_block_of_repeated_values_agrees_with_the_rule_book() -> None:
    variants = [
        GOOD,
        with_(total="10000.01"),
        with_(total="10000.00"),
        with_(total="1000000000"),
        with_(total="05.5"),
        with_(payment_type="CASH", card_number=""),
        with_(payment_type="CASH"),
        with_(date="31/02/2024 10:00"),
        with_(basket="Large Latte - 0.00"),
        with_(basket=", ".join(["S P - 1"] * 100)),
        with_(basket=", ".join(["S P - 1"] * 101)),
        with_(name=""),
        with_(name="x" * 257),
        with_(location="y" * 256),
        with_(card_number="12345678901"),
    ]
    rng = random.Random(11)
    rows = [rng.choice(variants) for _ in range(5000)]
    assert_agrees(rows)


_days = st.sampled_from(
    ["25/08/2021", "29/02/2024", "29/02/2023", "02/06/2024", "03/06/2024", "04/06/2024"]
)
_times = st.sampled_from(["00:00", "09:29", "09:30", "09:31", "23:59", "24:00", "9:30"])
_items = st.builds(
    "{} {}{} - {}".format,
    st.sampled_from(["Large", "Regular", "L\u00a0", "4111", ""]),
    st.sampled_from(["Latte", "Flavoured latte - Hazelnut", "1111 1111", "a - b - c", "x,"]),
    st.sampled_from(["", " 1111", "\x00", "\u200b"]),
    st.sampled_from(["2.45", "0", "0.01", "1111", "000001", "2.456"]),
)
_baskets = st.lists(_items, min_size=1, max_size=5).map(", ".join)
_rows = st.builds(
    lambda day, time, name, basket, total, payment, card: (
        f"{day} {time}",
        "Chesterfield",
        name,
        basket,
        total,
        payment,
        card,
    ),
    _days,
    _times,
    st.sampled_from(["Ann Lee", "", " Ann", "Ann 4111 1111 1111 1111", "Zoë"]),
    _baskets,
    st.sampled_from(["5", "5.2", "10000", "10000.001", "-1", "999999999.99"]),
    st.sampled_from(["CARD", "CASH", "card", "Cash "]),
    st.sampled_from(["", "4929123456789012", "4929 1234 5678 9012", "12345"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_rows, min_size=1, max_size=40))
def test_blocks_of_near_valid_rows_agree_with_the_rule_book(rows: list[tuple[str, ...]]) -> None:
    assert_agrees(rows)
