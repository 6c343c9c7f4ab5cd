"""Row validation rules, one line at a time and in bulk (the two must agree)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.contract import MAX_BASKET_ITEMS, MIN_CHARS_OVER_MAX_ITEMS, LineRules
from loader.errors import ConfigurationError
from loader.validation import (
    ABSENT_COLUMNS_KEY,
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
# The rules of a load whose clock reads 02/06/2024 09:30.
RULES = LineRules(date(2000, 1, 1), datetime(2024, 6, 3, 9, 30), Decimal("10000.00"))


def fields(**changes: str) -> tuple[str, ...]:
    row = dict(zip(COLUMNS, GOOD, strict=True))
    row.update(changes)
    return tuple(row[name] for name in COLUMNS)


def reason(**changes: str) -> str:
    checked = validate_fields(7, fields(**changes), RULES)
    assert isinstance(checked, RejectedRow), checked
    assert checked.line_number == 7
    return checked.reason


def accepted(**changes: str) -> AcceptedRow:
    checked = validate_fields(2, fields(**changes), RULES)
    assert isinstance(checked, AcceptedRow), checked
    return checked


def test_a_good_line_is_normalised() -> None:
    checked = accepted()
    assert checked.branch_name == "Chesterfield"
    assert checked.payment_type == "CARD"
    assert checked.card_digits == "4929123456789012"
    assert checked.total_amount == Decimal("2.45")


def test_day_comes_first() -> None:
    assert parse_export_date("13/01/2024 09:30") == datetime(2024, 1, 13, 9, 30)
    accepted(date="13/01/2024 09:30")
    assert reason(date="01/13/2024 09:30") == "date: does not exist"


def test_dates_that_do_not_exist_are_refused() -> None:
    assert reason(date="31/02/2024 09:00") == "date: does not exist"
    assert reason(date="29/02/2023 09:00") == "date: does not exist"
    accepted(date="29/02/2024 09:00")
    assert reason(date="01/01/2024 24:00") == "date: does not exist"


@pytest.mark.parametrize("text", ["2024-01-01 09:00", "1/1/2024 09:00", "01/01/2024", "Ann Lee"])
def test_malformed_dates_are_refused(text: str) -> None:
    assert reason(date=text) == "date: is not in dd/mm/YYYY HH:MM form"
    assert reason(date=" ") == "date: is empty"


def test_dates_outside_the_bounds_are_refused() -> None:
    assert reason(date="31/12/1899 09:00") == (
        "date: is before 2000-01-01, the earliest transaction date"
    )
    accepted(date="01/01/2000 00:00")
    accepted(date="03/06/2024 09:30")  # the clock (02/06/2024 09:30) plus a day
    assert reason(date="03/06/2024 09:31") == "date: is more than a day after the load"
    assert reason(date="01/01/2099 09:00") == "date: is more than a day after the load"


def test_rules_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAFE_EARLIEST_TRANSACTION_DATE", "2021-08-26")
    monkeypatch.setenv("CAFE_MAX_TRANSACTION_TOTAL", "20")
    rules = LineRules.for_load(datetime(2021, 9, 1, 12, 0))
    assert (rules.earliest, rules.latest, rules.max_total) == (
        date(2021, 8, 26),
        datetime(2021, 9, 2, 12, 0),
        Decimal(20),
    )
    assert "earliest" in str(validate_fields(2, GOOD, rules))
    monkeypatch.setenv("CAFE_MAX_TRANSACTION_TOTAL", "lots")
    with pytest.raises(ConfigurationError, match="CAFE_MAX_TRANSACTION_TOTAL"):
        LineRules.for_load()


def test_branch_and_total() -> None:
    assert reason(location="  ") == "location: is empty"
    assert reason(location="x" * 257) == "location: is longer than 256 bytes"
    assert reason(name="é" * 129) == "name: is longer than 256 bytes"
    assert reason(total="-1.00") == "total: is negative"
    assert reason(total="1.234") == "total: is not an amount with at most 2 decimals"
    assert reason(total="Ann Lee") == "total: is not an amount with at most 2 decimals"
    assert reason(total="10000.01") == "total: is more than 10000.00"
    for total in ("5.2", "0", "12.35", "10000", " 7 "):
        accepted(total=total)


@pytest.mark.parametrize(
    ("basket", "why"),
    [
        ("", "basket: is empty"),
        ("Large Latte - 2.45, ", "basket: item 2 is empty"),
        ("Latte - 2.45", "basket: item 1 has no size before its product"),
        ("Large Latte", "basket: item 1 has no price"),
        ("Large Latte - 2.45 extra shot", "basket: item 1 does not end with a price"),
        ("Large Latte - 2.456", "basket: item 1 does not end with a price"),
        ("Large Latte - 1234567.00", "basket: item 1 does not end with a price"),
        ("Large Latte - 0.00", "basket: item 1 has a price of zero"),
        ("Large Latte - Hazelnut - Oat - 2.45", "basket: item 1 has more than one flavour"),
        ("Large Latte -  - 2.45", "basket: item 1 has an empty or malformed product or flavour"),
        ("Large  Latte - 2.45", "basket: item 1 has an empty or malformed product or flavour"),
        (", ".join(["Large Latte - 2.45"] * 101), "basket: has more than 100 items"),
    ],
)
def test_basket_grammar(basket: str, why: str) -> None:
    assert reason(basket=basket).startswith(why)


@pytest.mark.parametrize(
    "basket",
    [
        "Large Latte - 2.45",
        "Regular Flavoured iced latte - Hazelnut - 2.75, Large Latte - 2.45",
        "Large Frappes - Strawberries & Cream - 3.25",
        "Venti Latte - 2.45",  # an unknown size is vocabulary, not a loader rule
        "Large Pumpkin spice - 2.45",
        "Large Latte - 2",
        ", ".join(["Large Latte - 2.45"] * 100),
    ],
)
def test_baskets_that_follow_the_grammar_load(basket: str) -> None:
    assert accepted(basket=basket).basket == basket


def test_payment_type_and_card_number() -> None:
    assert reason(payment_type="BITCOIN") == "payment_type: is not CARD or CASH"
    assert reason(payment_type="Ann Lee") == "payment_type: is not CARD or CASH"
    assert reason(payment_type="") == "payment_type: is empty"
    assert reason(card_number="") == "card_number: a card payment has no card number"
    assert reason(card_number="41111111111") == "card_number: is not 12-19 digits"
    assert reason(payment_type="CASH") == "card_number: a cash payment has a card number"
    cash = accepted(payment_type=" cash ", card_number="")
    assert cash.payment_type == "CASH"
    assert cash.card_digits is None
    assert normalise_card_number("4111-1111 1111-1111") == "4111111111111111"
    for disguised in (
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "4111\u20131111\u20131111\u20131111",
    ):
        assert accepted(card_number=disguised).card_digits == "4111111111111111"


def test_reasons_never_quote_the_line() -> None:
    secret = "Zebedee Quartermaine"
    for column in COLUMNS:
        checked = validate_fields(2, fields(**{column: secret}), RULES)
        if isinstance(checked, RejectedRow):
            assert secret not in checked.reason
            assert checked.reason.split(":")[0] == column


@pytest.mark.parametrize("column", ["date", "location", "name", "basket", "total", "payment_type"])
@pytest.mark.parametrize(
    "card",
    [
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "4111\u20131111\u20131111\u20131111",
        "4111_1111_1111_1111",
    ],
)
def test_a_card_number_in_a_data_field_rejects_the_line(column: str, card: str) -> None:
    checked = validate_fields(4, fields(**{column: f"x {card}"}), RULES)
    assert isinstance(checked, RejectedRow)
    assert checked.reason == f"{column}: a card number appears in this field"
    assert "4111" not in checked.raw_line.replace("1111", "")
    assert "************1111" in checked.raw_line


def test_refusals_never_hold_a_clear_card_number() -> None:
    rejected = validate_fields(
        3, fields(date="31/02/2024 09:00", card_number="4111111111111111"), RULES
    )
    assert isinstance(rejected, RejectedRow)
    assert "4111111111111111" not in rejected.raw_line
    assert "************1111" in rejected.raw_line
    short = validate_fields(3, fields(total="x", card_number="4111 1111 111"), RULES)
    assert isinstance(short, RejectedRow)
    assert short.raw_line.endswith(",**** ***1 111")
    in_name = validate_fields(3, fields(name="call 4111 1111 1111 1111"), RULES)
    assert isinstance(in_name, RejectedRow)
    assert in_name.reason == "name: a card number appears in this field"
    assert "4111 1111" not in in_name.raw_line
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
    alphabet=st.sampled_from(list("0123456789 -/:.,aAcCrRdDsShH\u00a0\x1f\x00é\u2013_")),
    max_size=24,
)
_items = st.builds(
    "{}{}{}{}".format,
    st.sampled_from(["Large ", "Regular ", "", " ", "Venti ", "L\u00a0"]),
    st.sampled_from(["Latte", "Flavoured latte - Hazelnut", "", "Latte - ", "A - B - C", "x,y"]),
    st.sampled_from([" - ", " -", " - - ", "-", " "]),
    st.sampled_from(["2.45", "0", "0.00", "000000.01", "1234567", "2.456", "2 extra", "", "3"]),
)
_baskets = st.lists(_items, min_size=1, max_size=4).map(", ".join)
_field_choices = st.one_of(
    _text,
    _baskets,
    st.sampled_from(
        [
            "25/08/2021 09:00",
            "31/02/2024 10:00",
            "31/12/1999 23:59",
            "01/01/2000 00:00",
            "03/06/2024 09:30",
            "03/06/2024 09:31",
            "01/01/2099 09:00",
            "CARD",
            "cash",
            " Cash ",
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111.1111.1111.1111",
            "4\\x001\\x001\\x001\\x001\\x001\\x001\\x001\\x001\\x001\\x001\\x001\\x001",
            "2.45",
            "5.2",
            "10000.00",
            "10000.01",
            "Large Latte - 2.45",
            "",
            " ",
        ]
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(*[_field_choices] * len(COLUMNS)), min_size=1, max_size=12))
def test_bulk_validation_agrees_with_the_rule_book(rows: list[tuple[str, ...]]) -> None:
    result = validate_block(block_of(rows), RULES)
    expected = {index + 2: validate_fields(index + 2, row, RULES) for index, row in enumerate(rows)}
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
    for rejected in result.rejected:
        assert rejected.reason.split(": ", 1)[0] in ("line", *COLUMNS)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(*[_baskets] * 2), min_size=1, max_size=8))
def test_bulk_and_rule_book_agree_on_baskets(baskets: list[tuple[str, str]]) -> None:
    rows = [fields(basket=basket) for basket, _ in baskets] + [
        fields(basket=basket, payment_type="CASH", card_number="") for _, basket in baskets
    ]
    result = validate_block(block_of(rows), RULES)
    accepted_lines = set(result.accepted.column("line_number").to_pylist())
    for index, row in enumerate(rows):
        rule_book = validate_fields(index + 2, row, RULES)
        assert isinstance(rule_book, AcceptedRow) == (index + 2 in accepted_lines), row


def test_a_file_without_card_numbers_has_anonymous_card_payments() -> None:
    anonymous = fields(name="", card_number="")
    assert reason(name="", card_number="") == "card_number: a card payment has no card number"
    checked = validate_fields(2, anonymous, RULES, absent=frozenset({"name", "card_number"}))
    assert isinstance(checked, AcceptedRow)
    assert (checked.customer_name, checked.card_digits) == (None, None)
    block = block_of([anonymous, fields(name="", card_number="", payment_type="CASH")])
    block = block.replace_schema_metadata({ABSENT_COLUMNS_KEY: b"name,card_number"})
    result = validate_block(block, RULES)
    assert result.rejected == []
    assert result.accepted.column("card_digits").to_pylist() == [None, None]
    assert result.accepted.column("payment_type").to_pylist() == ["CARD", "CASH"]


def test_basket_limits_fit_the_models_and_the_block_shortcut() -> None:
    assert MAX_BASKET_ITEMS <= 10_000  # the dbt models' int_numbers spine
    shortest_too_long = ", ".join(["S P - 1"] * (MAX_BASKET_ITEMS + 1))
    assert len(shortest_too_long) == MIN_CHARS_OVER_MAX_ITEMS
    assert reason(basket=shortest_too_long) == "basket: has more than 100 items"
    result = validate_block(block_of([fields(basket=shortest_too_long)]), RULES)
    assert [row.reason for row in result.rejected] == ["basket: has more than 100 items"]
