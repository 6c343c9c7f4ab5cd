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

`validate_block` applies the same rules to a whole parsed block with pyarrow compute
kernels, one pass per check; it only ever accepts a row that `validate_fields` would accept
with the same values (its checks are the same or stricter), and sends every other row
through `validate_fields` for the verdict and the reason. The property tests hold the two
to that.

Refused lines keep their text for `raw.rejected_rows`, masked: the card column keeps at
most its last four digits whatever it holds, and every other card-like number is masked
as `************1234`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from loader.cards import (
    RE2_CARD_LIKE_RUN,
    SEPARATORS,
    contains_card_like_number,
    mask_all_digits,
    mask_card_numbers,
)
from loader.contract import (
    AMOUNT_PATTERN,
    BASKET_PATTERN,
    CARD_DIGITS_PATTERN,
    COLUMNS,
    DATE_PATTERN,
    ITEM_SEPARATOR,
    MAX_BASKET_BYTES,
    MAX_BASKET_ITEMS,
    MAX_BRANCH_BYTES,
    MAX_NAME_BYTES,
    MIN_CHARS_OVER_MAX_ITEMS,
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
    branch = location.strip()
    if not branch:
        return reason("location", "is empty")
    if _too_long(branch, MAX_BRANCH_BYTES):
        return reason("location", f"is longer than {MAX_BRANCH_BYTES} bytes")
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

# RE2 (pyarrow's regex engine) reads \d and \s as ASCII only, Python as Unicode: these
# classes are the Unicode ones, so a block check never misses what Python would catch.
_RE2_SPACE: Final = r"[\s\p{Z}\x{1c}-\x{1f}\x{85}]"
# After trimming ASCII spaces, a value must not start or end with any other space-like
# character, so that the trimmed value equals Python's str.strip() of it.
_RE2_EDGE_SPACE: Final = f"^{_RE2_SPACE}|{_RE2_SPACE}$"
_RE2_CARD_SEPARATOR: Final = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in SEPARATORS) + "]"


@dataclass(frozen=True, slots=True)
class BlockResult:
    accepted: pa.Table  # ACCEPTED_SCHEMA; card_digits is clear and must be hashed
    rejected: list[RejectedRow]


def _all(masks: list[pa.Array]) -> pa.Array:
    result = masks[0]
    for mask in masks[1:]:
        result = pc.and_kleene(result, mask)
    return result


def _trimmed(column: pa.Array, checks: list[pa.Array]) -> pa.Array:
    value = pc.utf8_trim(column, characters=" ")
    checks.append(pc.invert(pc.match_substring_regex(value, _RE2_EDGE_SPACE)))
    return value


def _matches(column: pa.Array, pattern: str) -> pa.Array:
    return pc.match_substring_regex(column, f"^(?:{pattern})$")


def absent_columns(schema: pa.Schema) -> frozenset[str]:
    """The optional columns a block's file does not have (from its schema metadata)."""
    text = (schema.metadata or {}).get(ABSENT_COLUMNS_KEY, b"").decode()
    return frozenset(name for name in text.split(",") if name)


def validate_block(rows: pa.Table, rules: LineRules | None = None) -> BlockResult:
    """Validate a block (the seven export columns and `line_number`) in bulk."""
    rules = rules or LineRules.for_load()
    absent = absent_columns(rows.schema)
    columns = [rows.column(name).combine_chunks() for name in COLUMNS]
    date, location, name, basket, total, payment, card = columns
    checks: list[pa.Array] = []
    for column in columns:
        checks.append(pc.invert(pc.match_substring(column, "\x00")))
    # One scan of the data columns joined by a comma (which no card run spans) costs much
    # less than one scan per column.
    data_columns = pc.binary_join_element_wise(*columns[:_CARD_COLUMN], ",")
    checks.append(pc.invert(pc.match_substring_regex(data_columns, RE2_CARD_LIKE_RUN)))
    date = _trimmed(date, checks)
    checks.append(_matches(date, DATE_PATTERN))
    location = _trimmed(location, checks)
    checks.append(pc.greater(pc.utf8_length(location), 0))
    checks.append(pc.less_equal(pc.binary_length(location), MAX_BRANCH_BYTES))
    name = _trimmed(name, checks)
    checks.append(pc.less_equal(pc.binary_length(name), MAX_NAME_BYTES))
    checks.append(pc.less_equal(pc.binary_length(basket), MAX_BASKET_BYTES))
    checks.append(_matches(basket, BASKET_PATTERN))
    long_basket = pc.greater_equal(pc.utf8_length(basket), MIN_CHARS_OVER_MAX_ITEMS)
    if pc.any(long_basket).as_py():
        few_items = pc.less(pc.count_substring(basket, ITEM_SEPARATOR), MAX_BASKET_ITEMS)
        checks.append(pc.or_(pc.invert(long_basket), few_items))
    total = _trimmed(total, checks)
    checks.append(_matches(total, AMOUNT_PATTERN))
    payment = pc.utf8_upper(_trimmed(payment, checks))
    is_card = pc.equal(payment, "CARD")
    card = _trimmed(card, checks)
    digits = pc.replace_substring_regex(card, _RE2_CARD_SEPARATOR, "")
    is_empty_card = pc.equal(pc.utf8_length(card), 0)
    card_ok = pc.and_(is_card, _matches(digits, CARD_DIGITS_PATTERN))
    if "card_number" in absent:
        card_ok = pc.and_(is_card, is_empty_card)
    checks.append(pc.or_(card_ok, pc.and_(pc.equal(payment, "CASH"), is_empty_card)))
    ok = _all(checks)
    amount = pc.cast(pc.if_else(ok, total, "0"), pa.decimal128(12, 2))
    ok = pc.and_(ok, pc.less_equal(amount, pa.scalar(rules.max_total, pa.decimal128(12, 2))))
    # Dates that match the pattern may still not exist (31/02) or lie out of bounds: a
    # block holds a few hundred distinct minutes, each checked once.
    distinct_dates = pc.unique(pc.filter(date, ok)).to_pylist()
    missing = [value for value in distinct_dates if date_problem(value, rules) is not None]
    if missing:
        ok = pc.and_(ok, pc.invert(pc.is_in(date, value_set=pa.array(missing, pa.string()))))

    fast = pa.table(
        {
            "line_number": pc.cast(rows.column("line_number"), pa.int32()),
            "transaction_date": date,
            "branch_name": location,
            "customer_name": pc.if_else(pc.equal(pc.utf8_length(name), 0), None, name),
            "basket": basket,
            "total_amount": amount,
            "payment_type": payment,
            "card_digits": pc.if_else(pc.and_(is_card, pc.invert(is_empty_card)), digits, None),
        },
        schema=ACCEPTED_SCHEMA,
    ).filter(ok)
    slow_rows = rows.filter(pc.invert(ok))
    if slow_rows.num_rows == 0:
        return BlockResult(fast, [])
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
