"""Row validation rules, one line at a time and in bulk (the two must agree)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.validation import (
    COLUMNS,
    AcceptedRow,
    RejectedRow,
    mask_card_numbers,
    normalise_card_number,
    parse_export_date,
    validate_block,
    validate_fields,
)

CARD = "4929 1234-5678 9012"
GOOD = ("25/08/2021 09:00", " Chesterfield ", "Ann Lee", "Large Latte - 2.45", "2.45", "card", CARD)


def fields(**changes: str) -> tuple[str, ...]:
    row = dict(zip(COLUMNS, GOOD, strict=True))
    row.update(changes)
    return tuple(row[name] for name in COLUMNS)


def reason(**changes: str) -> str:
    checked = validate_fields(7, fields(**changes))
    assert isinstance(checked, RejectedRow), checked
    assert checked.line_number == 7
    return checked.reason


def test_a_good_line_is_normalised() -> None:
    checked = validate_fields(2, GOOD)
    assert isinstance(checked, AcceptedRow)
    assert checked.branch_name == "Chesterfield"
    assert checked.payment_type == "CARD"
    assert checked.card_digits == "4929123456789012"
    assert checked.total_amount == Decimal("2.45")


def test_day_comes_first() -> None:
    assert parse_export_date("13/01/2024 09:30") == datetime(2024, 1, 13, 9, 30)
    assert isinstance(validate_fields(2, fields(date="13/01/2024 09:30")), AcceptedRow)
    assert "does not exist" in reason(date="01/13/2024 09:30")


def test_dates_that_do_not_exist_are_refused() -> None:
    assert reason(date="31/02/2024 09:00") == 'date "31/02/2024 09:00" does not exist'
    assert "does not exist" in reason(date="29/02/2023 09:00")
    assert isinstance(validate_fields(2, fields(date="29/02/2024 09:00")), AcceptedRow)
    assert "does not exist" in reason(date="01/01/2024 24:00")


@pytest.mark.parametrize("date", ["2024-01-01 09:00", "1/1/2024 09:00", "01/01/2024", ""])
def test_malformed_dates_are_refused(date: str) -> None:
    assert reason(date=date).startswith("date")


def test_branch_basket_and_total() -> None:
    assert reason(location="  ") == "branch (location) is empty"
    assert reason(basket="") == "basket is empty"
    assert "negative" in reason(total="-1.00")
    assert "at most 2 decimals" in reason(total="1.234")
    assert "at most 2 decimals" in reason(total="abc")
    for total in ("5.2", "0", "12.35"):
        assert isinstance(validate_fields(2, fields(total=total)), AcceptedRow)


def test_payment_type_and_card_number() -> None:
    assert reason(payment_type="BITCOIN") == 'payment type "BITCOIN" is not CARD or CASH'
    assert reason(card_number="") == "card payment has no card number"
    assert reason(card_number="41111111111") == "card number is not 12-19 digits"
    assert reason(payment_type="CASH") == "cash payment has a card number"
    cash = validate_fields(2, fields(payment_type=" cash ", card_number=""))
    assert isinstance(cash, AcceptedRow)
    assert cash.payment_type == "CASH"
    assert cash.card_digits is None
    assert normalise_card_number("4111-1111 1111-1111") == "4111111111111111"


def test_refusals_never_hold_a_clear_card_number() -> None:
    rejected = validate_fields(3, fields(date="31/02/2024 09:00", card_number="4111111111111111"))
    assert isinstance(rejected, RejectedRow)
    assert "4111111111111111" not in rejected.raw_line
    assert "************1111" in rejected.raw_line
    in_name = validate_fields(3, fields(name="call 4111 1111 1111 1111"))
    assert isinstance(in_name, RejectedRow)
    assert in_name.reason == "a card-like number appears in the name column"
    assert "4111 1111" not in in_name.raw_line
    assert "1111" in mask_card_numbers("x 4111-1111-1111-1111 y")
    assert mask_card_numbers("x 4111-1111-1111-1111 y") == "x ************1111 y"
    assert mask_card_numbers("total 12.50 on 25/08/2021") == "total 12.50 on 25/08/2021"


def block_of(rows: list[tuple[str, ...]]) -> pa.Table:
    columns = {name: [row[index] for row in rows] for index, name in enumerate(COLUMNS)}
    return pa.table(
        {
            **{name: pa.array(values, pa.string()) for name, values in columns.items()},
            "line_number": pa.array(range(2, len(rows) + 2), pa.int64()),
        }
    )


def test_bulk_validation_matches_the_rule_book_on_known_cases() -> None:
    rows = [
        GOOD,
        fields(date="31/02/2024 09:00"),
        fields(payment_type="CASH", card_number=""),
        fields(name="\u00a0Zoë\u00a0"),
        fields(total="-1"),
    ]
    result = validate_block(block_of(rows))
    assert sorted(result.accepted.column("line_number").to_pylist()) == [2, 4, 5]
    assert [row.line_number for row in result.rejected] == [3, 6]
    names = dict(
        zip(
            result.accepted.column("line_number").to_pylist(),
            result.accepted.column("customer_name").to_pylist(),
            strict=True,
        )
    )
    assert names[5] == "Zoë"  # Unicode spaces trimmed as Python's str.strip() does


_text = st.text(
    alphabet=st.sampled_from(list("0123456789 -/:.,aAcCrRdDsShH\u00a0\x1f\x00é")), max_size=24
)
_field_choices = st.one_of(
    _text,
    st.sampled_from(
        [
            "25/08/2021 09:00",
            "31/02/2024 10:00",
            "CARD",
            "cash",
            " Cash ",
            "4111111111111111",
            "4111 1111 1111 1111",
            "2.45",
            "5.2",
            "Large Latte - 2.45",
            "",
            " ",
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(*[_field_choices] * len(COLUMNS)), min_size=1, max_size=12))
def test_bulk_validation_agrees_with_the_rule_book(rows: list[tuple[str, ...]]) -> None:
    result = validate_block(block_of(rows))
    expected = {index + 2: validate_fields(index + 2, row) for index, row in enumerate(rows)}
    accepted = result.accepted.to_pylist()
    assert {row["line_number"] for row in accepted} == {
        line for line, checked in expected.items() if isinstance(checked, AcceptedRow)
    }
    for row in accepted:
        rule_book = expected[row["line_number"]]
        assert isinstance(rule_book, AcceptedRow)
        assert row["transaction_date"] == rule_book.transaction_date
        assert row["branch_name"] == rule_book.branch_name
        assert row["customer_name"] == rule_book.customer_name
        assert row["basket"] == rule_book.basket
        assert row["total_amount"] == rule_book.total_amount
        assert row["payment_type"] == rule_book.payment_type
        assert row["card_digits"] == rule_book.card_digits
    assert result.rejected == [c for c in expected.values() if isinstance(c, RejectedRow)]
