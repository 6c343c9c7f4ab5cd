"""Validation of till-export lines against the line contract (`loader.contract`): pure
functions, no I/O.

`validate_fields` is the rule book, one line at a time; the first problem found is the
reason, written `<field>: <rule>` and never quoting a value of the line. The checks, in
order:

* `line`: no NUL character anywhere;
* every column but `card_number`: no card number in any disguise (`loader.cards`; anything
  the masker would mask counts, so nothing that would need masking is ever loaded);
* `date`, `location`, `name`, `basket`, `total`, `payment_type`, `card_number`: the
  contract's rules for each (dates that exist and lie within the load's bounds, the basket
  grammar, totals within bounds, CARD or CASH, 12-19 digits on a CARD line and none on a
  CASH line) and the column sizes of `raw.transactions`.

`validate_block` applies the same rules to a whole parsed block, each column once per
distinct value (a block repeats its dates, branch, totals, payment types and most
baskets): the branch and the payment type through the rule book's own functions, the dates
through it once per distinct day, the other columns with pyarrow's RE2 kernels. It takes
only values in their canonical form and only ever accepts a row that `validate_fields`
would accept with the same values (its checks are the same or stricter); every other row
goes through `validate_fields` for the verdict and the reason. The property tests hold the
two to that.

Refused lines keep their text for `raw.rejected_rows`, masked: the card column keeps at
most its last four digits whatever it holds, and every other card-like number is masked
as `************1234`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loader.cards import (
    RE2_CARD_LIKE_RUN,
    RE2_SEPARATOR,
    RE2_WHITESPACE,
    contains_card_like_number,
    mask_all_digits,
    mask_card_numbers,
)
from loader.contract import (
    CARD_DIGITS_PATTERN,
    COLUMNS,
    ITEM_PATTERN,
    ITEM_SEPARATOR,
    MAX_BASKET_BYTES,
    MAX_BASKET_ITEMS,
    MAX_BRANCH_BYTES,
    MAX_NAME_BYTES,
    LineRules,
    basket_problem,
    card_number_problem,
    date_problem,
    normalise_card_number,
    parse_export_date,
    payment_type_problem,
    reason,
    total_problem,
)

__all__ = [
    "COLUMNS",
    "FIELD_COUNT",
    "AcceptedRow",
    "BlockResult",
    "LineRules",
    "RejectedRow",
    "mask_card_numbers",
    "normalise_card_number",
    "parse_export_date",
    "raw_line_of",
    "reject",
    "reject_malformed",
    "sanitise_text",
    "validate_block",
    "validate_fields",
]

FIELD_COUNT: Final = len(COLUMNS)
# Schema metadata of a block: the optional columns the file does not have (comma-separated),
# whose values the reader filled with empty strings.
ABSENT_COLUMNS_KEY: Final = b"cafe.absent_columns"
MAX_REASON_CHARS: Final = 1024
MAX_RAW_LINE_BYTES: Final = 65535
_CARD_COLUMN: Final = COLUMNS.index("card_number")


@dataclass(frozen=True, slots=True)
class AcceptedRow:
    """A line that may enter raw.transactions; `card_digits` is clear and must be hashed."""

    line_number: int
    transaction_date: str
    branch_name: str
    customer_name: str | None
    basket: str
    total_amount: Decimal
    payment_type: str
    card_digits: str | None


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A refused line: `reason` and `raw_line` are already free of clear card numbers."""

    line_number: int
    reason: str
    raw_line: str


def sanitise_text(text: str) -> str:
    """Text safe to store in any column: card numbers masked, NUL characters spelt out."""
    return mask_card_numbers(text).replace("\x00", "\\x00")


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def _too_long(value: str, max_bytes: int) -> bool:
    # A str of n characters is at least n bytes, so most values skip the encode.
    return len(value) > max_bytes or (
        len(value) * 4 > max_bytes and len(value.encode("utf-8")) > max_bytes
    )


def raw_line_of(fields: Sequence[str]) -> str:
    """The line as CSV text (minimal quoting, as the exports write it), sanitised.

    With the seven export columns, the card column keeps at most its last four digits
    whatever it holds (a number too short or too oddly written to pass as a card is still
    somebody's card).
    """
    shown = list(fields)
    if len(shown) == FIELD_COUNT:
        shown[_CARD_COLUMN] = mask_all_digits(shown[_CARD_COLUMN])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(shown)
    return _truncate_utf8(sanitise_text(buffer.getvalue()), MAX_RAW_LINE_BYTES)


def reject(line_number: int, why: str, raw_line: str) -> RejectedRow:
    """A refusal with its reason and text made safe to store."""
    return RejectedRow(
        line_number=line_number,
        reason=sanitise_text(why)[:MAX_REASON_CHARS],
        raw_line=_truncate_utf8(sanitise_text(raw_line), MAX_RAW_LINE_BYTES),
    )


def reject_malformed(
    line_number: int, text: str, field_count: int, expected_fields: int | None = None
) -> RejectedRow:
    """A line that did not split into the file's columns."""
    if expected_fields is None:
        rule = f"has {field_count} fields, not the number of columns of the file"
    else:
        rule = f"has {field_count} fields, expected {expected_fields}"
    return reject(line_number, reason("line", rule), text)


def validate_fields(
    line_number: int,
    fields: Sequence[str],
    rules: LineRules | None = None,
    *,
    absent: frozenset[str] = frozenset(),
) -> AcceptedRow | RejectedRow:
    """Check one parsed line of the seven export columns against the contract.

    `absent` names optional columns the file does not have (their values are empty).
    """
    problem = first_problem(fields, rules or LineRules.for_load(), absent)
    if problem is not None:
        return RejectedRow(line_number, problem[:MAX_REASON_CHARS], raw_line_of(fields))
    date_text, location, name, basket, total, payment, card = fields
    payment_type = payment.strip().upper()
    customer_name = name.strip()
    return AcceptedRow(
        line_number=line_number,
        transaction_date=date_text.strip(),
        branch_name=location.strip(),
        customer_name=customer_name or None,
        basket=basket,
        total_amount=Decimal(total.strip()),
        payment_type=payment_type,
        card_digits=normalise_card_number(card.strip()) if payment_type == "CARD" else None,
    )


def _location_problem(branch: str) -> str | None:
    """The rule a trimmed location breaks, or None."""
    if not branch:
        return "is empty"
    if _too_long(branch, MAX_BRANCH_BYTES):
        return f"is longer than {MAX_BRANCH_BYTES} bytes"
    return None


def first_problem(
    fields: Sequence[str], rules: LineRules, absent: frozenset[str] = frozenset()
) -> str | None:
    """The reason (`<field>: <rule>`) of the first rule the line breaks, or None."""
    if len(fields) != FIELD_COUNT:
        return reason("line", f"has {len(fields)} fields, expected {FIELD_COUNT}")
    if any("\x00" in value for value in fields):
        return reason("line", "contains a NUL character")
    for column, value in zip(COLUMNS[:_CARD_COLUMN], fields[:_CARD_COLUMN], strict=True):
        if contains_card_like_number(value):
            return reason(column, "a card number appears in this field")
    date_text, location, name, basket, total, payment, card = fields

    problem = date_problem(date_text.strip(), rules)
    if problem is not None:
        return reason("date", problem)
    problem = _location_problem(location.strip())
    if problem is not None:
        return reason("location", problem)
    if _too_long(name.strip(), MAX_NAME_BYTES):
        return reason("name", f"is longer than {MAX_NAME_BYTES} bytes")
    problem = basket_problem(basket)
    if problem is not None:
        return reason("basket", problem)
    problem = total_problem(total.strip(), rules)
    if problem is not None:
        return reason("total", problem)
    payment_type = payment.strip().upper()
    problem = payment_type_problem(payment_type)
    if problem is not None:
        return reason("payment_type", problem)
    problem = card_number_problem(
        payment_type, card.strip(), column_present="card_number" not in absent
    )
    if problem is not None:
        return reason("card_number", problem)
    return None


# -- the same rules over a whole block --------------------------------------------------------

ACCEPTED_SCHEMA: Final = pa.schema(
    [
        pa.field("line_number", pa.int32()),
        pa.field("transaction_date", pa.string()),
        pa.field("branch_name", pa.string()),
        pa.field("customer_name", pa.string()),
        pa.field("basket", pa.string()),
        pa.field("total_amount", pa.decimal128(12, 2)),
        pa.field("payment_type", pa.string()),
        pa.field("card_digits", pa.string()),
    ]
)
_AMOUNT_TYPE: Final = pa.decimal128(12, 2)

# The block check takes only values already in their canonical form (no spaces around them,
# separators-free or plainly separated card numbers, ...) and never accepts a value the rule
# book refuses; whatever it does not take goes through `validate_fields`, which decides and
# explains. Its patterns are the rule book's or stricter:
#   a date whose time of day exists; its day is checked once per distinct day (`_whole_day`);
_FAST_DATE: Final = r"^[0-9]{2}/[0-9]{2}/[0-9]{4} (?:[01][0-9]|2[0-3]):[0-5][0-9]$"
_DAY_CHARS: Final = len("dd/mm/YYYY")
#   a total of at most 9 integer digits and 2 decimals: 11 digits, never card-like;
_FAST_TOTAL: Final = r"^[0-9]{1,9}(?:\.[0-9]{1,2})?$"
_FAST_CARD_DIGITS: Final = f"^{CARD_DIGITS_PATTERN}$"
_FAST_ITEM: Final = f"^(?:{ITEM_PATTERN})$"
#   free text (a name, a basket) without a NUL or anything the masker would mask, and a name
#   without the spaces around it that the rule book would trim.
_HIDDEN_OR_CARD: Final = f"\\x00|{RE2_CARD_LIKE_RUN}"
_UNTRIMMED: Final = f"^{RE2_WHITESPACE}|{RE2_WHITESPACE}$"


@dataclass(frozen=True, slots=True)
class BlockResult:
    accepted: pa.Table  # ACCEPTED_SCHEMA; card_digits is clear and must be hashed
    rejected: list[RejectedRow]


def absent_columns(schema: pa.Schema) -> frozenset[str]:
    """The optional columns a block's file does not have (from its schema metadata)."""
    text = (schema.metadata or {}).get(ABSENT_COLUMNS_KEY, b"").decode()
    return frozenset(name for name in text.split(",") if name)


@dataclass(frozen=True, slots=True)
class _Distinct:
    """A column as its distinct values and each row's index into them: a check of the
    values runs once per distinct value (a block repeats its dates, branch, totals, payment
    types and most baskets), and `rows` spreads its result back over the rows."""

    values: pa.Array
    indices: pa.Array

    @classmethod
    def of(cls, column: pa.Array) -> _Distinct:
        encoded = pc.dictionary_encode(column)
        return cls(encoded.dictionary, encoded.indices)

    def rows(self, per_value: pa.Array) -> pa.Array:
        return pc.take(per_value, self.indices)

    def mapped(self, normalise: Callable[[str], str | None]) -> pa.Array:
        """`normalise` of each row's value (None: refused), calling it once per distinct value."""
        return self.rows(pa.array([normalise(v) for v in self.values.to_pylist()], pa.string()))


def _matches(values: pa.Array, pattern: str) -> pa.Array:
    return pc.match_substring_regex(values, pattern)


def _clean_text(value: str) -> bool:
    return "\x00" not in value and not contains_card_like_number(value)


def _branch_name(value: str) -> str | None:
    """The branch name a location loads as, or None when the rule book refuses it."""
    branch = value.strip()
    return branch if _clean_text(value) and _location_problem(branch) is None else None


def _payment_type(value: str) -> str | None:
    """The payment type a value loads as, or None when the rule book refuses it."""
    normalised = value.strip().upper()
    return normalised if _clean_text(value) and payment_type_problem(normalised) is None else None


def _whole_day(day: str, rules: LineRules) -> bool:
    """Whether every minute of a `dd/mm/YYYY` day is a date the rules accept: its first and
    last minute are (the bounds are a day and a minute, so the minutes between are too)."""
    return (
        date_problem(f"{day} 00:00", rules) is None and date_problem(f"{day} 23:59", rules) is None
    )


def _date_ok(date: pa.Array, rules: LineRules) -> pa.Array:
    dates = _Distinct.of(date)
    days = _Distinct.of(pc.utf8_slice_codeunits(dates.values, 0, _DAY_CHARS))
    whole_days = pa.array([_whole_day(day, rules) for day in days.values.to_pylist()], pa.bool_())
    return dates.rows(pc.and_(_matches(dates.values, _FAST_DATE), days.rows(whole_days)))


def _free_texts_ok(name: pa.Array, basket: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Each row's name and basket checks.

    A basket is checked as the rule book does, item by item (its text split at `, `), and a
    block's baskets repeat a menu's few items: each distinct item is checked once. Names and
    items share one scan for hidden characters and card numbers (the pattern is costly to
    compile, and a card number never spans an item separator: a comma separates no digits).
    """
    names, baskets = _Distinct.of(name), _Distinct.of(basket)
    items_of_baskets = pc.split_pattern(baskets.values, ITEM_SEPARATOR)
    items = _Distinct.of(pc.list_flatten(items_of_baskets))
    clean = pc.invert(_matches(pa.concat_arrays([names.values, items.values]), _HIDDEN_OR_CARD))
    name_count = len(names.values)
    name_ok = _all(
        [
            clean.slice(0, name_count),
            pc.invert(_matches(names.values, _UNTRIMMED)),
            pc.less_equal(pc.binary_length(names.values), MAX_NAME_BYTES),
        ]
    )
    item_ok = items.rows(pc.and_(clean.slice(name_count), _matches(items.values, _FAST_ITEM)))
    bad_items = pc.list_parent_indices(items_of_baskets).to_numpy()[
        pc.invert(item_ok).to_numpy(zero_copy_only=False)
    ]
    basket_ok = _all(
        [
            pa.array(np.bincount(bad_items, minlength=len(baskets.values)) == 0),
            pc.less_equal(pc.list_value_length(items_of_baskets), MAX_BASKET_ITEMS),
            pc.less_equal(pc.binary_length(baskets.values), MAX_BASKET_BYTES),
        ]
    )
    return names.rows(name_ok), baskets.rows(basket_ok)


def _amounts(total: pa.Array, rules: LineRules) -> tuple[pa.Array, pa.Array]:
    """(ok, amount) of each row's total."""
    totals = _Distinct.of(total)
    form = _matches(totals.values, _FAST_TOTAL)
    amounts = pc.cast(pc.if_else(form, totals.values, "0"), _AMOUNT_TYPE)
    ok = pc.and_(form, pc.less_equal(amounts, pa.scalar(rules.max_total, _AMOUNT_TYPE)))
    return totals.rows(ok), totals.rows(amounts)


def _card_digits(card: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(is empty, its 12-19 digits without separators or null) of each row's card number."""
    empty = pc.equal(pc.binary_length(card), 0)
    plain = _matches(card, _FAST_CARD_DIGITS)
    if pc.all(pc.or_(plain, empty)).as_py():
        return empty, pc.if_else(plain, card, None)
    digits = pc.replace_substring_regex(card, RE2_SEPARATOR, "")
    return empty, pc.if_else(_matches(digits, _FAST_CARD_DIGITS), digits, None)


def _all(masks: list[pa.Array]) -> pa.Array:
    result = masks[0]
    for mask in masks[1:]:
        result = pc.and_kleene(result, mask)
    return pc.fill_null(result, False)


def validate_block(rows: pa.Table, rules: LineRules | None = None) -> BlockResult:
    """Validate a block (the seven export columns and `line_number`) in bulk."""
    rules = rules or LineRules.for_load()
    absent = absent_columns(rows.schema)
    date, location, name, basket, total, payment, card = (
        rows.column(column).combine_chunks() for column in COLUMNS
    )
    branch_name = _Distinct.of(location).mapped(_branch_name)
    payment_type = _Distinct.of(payment).mapped(_payment_type)
    total_ok, amount = _amounts(total, rules)
    empty_card, digits = _card_digits(card)
    is_card = pc.equal(payment_type, "CARD")
    if "card_number" in absent:  # anonymous card payments: the reader's empty values
        card_ok = pc.and_(is_card, empty_card)
    else:
        card_ok = pc.and_(is_card, pc.is_valid(digits))
    cash_ok = pc.and_(pc.equal(payment_type, "CASH"), empty_card)
    name_ok, basket_ok = _free_texts_ok(name, basket)
    ok = _all(
        [
            _date_ok(date, rules),
            pc.is_valid(branch_name),
            name_ok,
            basket_ok,
            total_ok,
            pc.or_kleene(card_ok, cash_ok),
        ]
    )
    fast = pa.table(
        {
            "line_number": pc.cast(rows.column("line_number"), pa.int32()),
            "transaction_date": date,
            "branch_name": branch_name,
            "customer_name": pc.if_else(pc.equal(pc.binary_length(name), 0), None, name),
            "basket": basket,
            "total_amount": amount,
            "payment_type": payment_type,
            "card_digits": pc.if_else(is_card, digits, None),
        },
        schema=ACCEPTED_SCHEMA,
    ).filter(ok)
    if fast.num_rows == rows.num_rows:
        return BlockResult(fast, [])
    slow_rows = rows.filter(pc.invert(ok))
    accepted: list[AcceptedRow] = []
    rejected: list[RejectedRow] = []
    slow_fields = [slow_rows.column(name).to_pylist() for name in COLUMNS]
    slow_lines = slow_rows.column("line_number").to_pylist()
    for line_number, *fields in zip(slow_lines, *slow_fields, strict=True):
        checked = validate_fields(line_number, fields, rules, absent=absent)
        if isinstance(checked, AcceptedRow):
            accepted.append(checked)
        else:
            rejected.append(checked)
    if accepted:
        fast = pa.concat_tables([fast, _accepted_table(accepted)])
    return BlockResult(fast, rejected)


def _accepted_table(rows: list[AcceptedRow]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "line_number": row.line_number,
                "transaction_date": row.transaction_date,
                "branch_name": row.branch_name,
                "customer_name": row.customer_name,
                "basket": row.basket,
                "total_amount": row.total_amount,
                "payment_type": row.payment_type,
                "card_digits": row.card_digits,
            }
            for row in rows
        ],
        schema=ACCEPTED_SCHEMA,
    )
