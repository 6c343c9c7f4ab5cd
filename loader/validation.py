"""Structural validation of one till-export line: pure functions, no I/O.

Only what the warehouse needs to store a line faithfully is checked here; business rules
(does the basket add up to the total, is the branch known) are dbt tests on top of `raw`.

Rules, each refusal carrying a sentence a person understands:

* `date` is `dd/mm/YYYY HH:MM` and names a minute that exists (31/02 does not; the day
  always comes first, so 13/01 is 13 January and 01/13 is refused);
* `location` (the branch) and `basket` are not empty;
* `total` is a non-negative amount with at most two decimals that fits numeric(12,2);
* `payment_type` is CARD or CASH after trimming, in any case (stored upper case);
* a CARD line has a card number of 12-19 digits once spaces and dashes are removed;
  a CASH line must have no card number: a number there contradicts the payment type, and
  refusing the line keeps a stray card number out of the warehouse;
* no field is longer than its column (sizes in UTF-8 bytes, which is how Redshift counts),
  no field holds a NUL character (PostgreSQL text cannot), and no column other than
  `card_number` holds a card-like digit run (it would reach the warehouse in clear).

`validate_fields` is the rule book, one line at a time. `validate_block` applies the same
rules to a whole parsed block with pyarrow compute kernels; it only ever accepts a row that
`validate_fields` would accept with the same values (its checks are the same or stricter),
and sends every other row through `validate_fields` for the verdict and the reason. The
property tests hold the two to that.

Refused lines keep their text for `raw.rejected_rows`, with every card-like digit run
(12 or more digits, with any spaces or dashes between them) masked as `************1234`.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

COLUMNS: Final = ("date", "location", "name", "basket", "total", "payment_type", "card_number")
FIELD_COUNT: Final = len(COLUMNS)

# Column sizes of raw.transactions (docs/contracts.md), in bytes.
MAX_BRANCH_BYTES: Final = 256
MAX_NAME_BYTES: Final = 256
MAX_BASKET_BYTES: Final = 65535
MAX_REASON_CHARS: Final = 1024
MAX_RAW_LINE_BYTES: Final = 65535

# ASCII digits only: Python's \d would also accept, say, Arabic-Indic digits.
_DATE = re.compile(r"(\d{2})/(\d{2})/(\d{4}) (\d{2}):(\d{2})", re.ASCII)
_AMOUNT = re.compile(r"\d{1,10}(?:\.\d{1,2})?", re.ASCII)
_NEGATIVE_AMOUNT = re.compile(r"-\d+(?:\.\d+)?", re.ASCII)
_CARD_SEPARATORS = re.compile(r"[\s-]")
# 12 or more digits with any spaces or dashes between them (`4111 1111 ...`): the same
# separators normalise_card_number removes, so nothing it would accept escapes the mask.
_CARD_LIKE = re.compile(r"\d(?:[\s-]*\d){11,}")
_QUOTE_LIMIT: Final = 40


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


def mask_card_numbers(text: str) -> str:
    """`text` with each card-like digit run replaced by stars and its last four digits."""
    return _CARD_LIKE.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "*" * (len(digits) - 4) + digits[-4:]


def normalise_card_number(text: str) -> str | None:
    """The card's digits without spaces or dashes, or None unless they are 12-19 digits."""
    digits = _CARD_SEPARATORS.sub("", text)
    if 12 <= len(digits) <= 19 and digits.isascii() and digits.isdigit():
        return digits
    return None


def parse_export_date(text: str) -> datetime | None:
    """The minute `text` names in `dd/mm/YYYY HH:MM`, or None when it is malformed or absent."""
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    day, month, year, hour, minute = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute)
    except ValueError:
        return None


@functools.lru_cache(maxsize=8192)
def _date_problem(date_value: str) -> str | None:
    # A day's export repeats the same few hundred minutes: check each distinct one once.
    if not date_value:
        return "date is empty"
    if _DATE.fullmatch(date_value) is None:
        return f"date {_quoted(date_value)} is not in dd/mm/YYYY HH:MM form"
    if parse_export_date(date_value) is None:
        return f"date {_quoted(date_value)} does not exist"
    return None


def sanitise_text(text: str) -> str:
    """Text safe to store in any column: card numbers masked, NUL characters spelt out."""
    return mask_card_numbers(text).replace("\x00", "\\x00")


def _quoted(value: str) -> str:
    shown = value if len(value) <= _QUOTE_LIMIT else value[: _QUOTE_LIMIT - 1] + "…"
    return '"' + sanitise_text(shown) + '"'


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
    """The line as CSV text (minimal quoting, as the exports write it), sanitised."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return _truncate_utf8(sanitise_text(buffer.getvalue()), MAX_RAW_LINE_BYTES)


def reject(line_number: int, reason: str, raw_line: str) -> RejectedRow:
    """A refusal with its reason and text made safe to store."""
    return RejectedRow(
        line_number=line_number,
        reason=sanitise_text(reason)[:MAX_REASON_CHARS],
        raw_line=_truncate_utf8(sanitise_text(raw_line), MAX_RAW_LINE_BYTES),
    )


def reject_malformed(line_number: int, text: str, field_count: int) -> RejectedRow:
    """A line that did not split into the seven columns."""
    return reject(line_number, f"line has {field_count} fields, expected {FIELD_COUNT}", text)


def validate_fields(line_number: int, fields: Sequence[str]) -> AcceptedRow | RejectedRow:
    """Check one parsed line of seven fields; the first problem found is the reason."""
    reason = _first_problem(fields)
    if reason is not None:
        return RejectedRow(line_number, reason[:MAX_REASON_CHARS], raw_line_of(fields))
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
        card_digits=normalise_card_number(card) if payment_type == "CARD" else None,
    )


def _first_problem(fields: Sequence[str]) -> str | None:
    if len(fields) != FIELD_COUNT:
        return f"line has {len(fields)} fields, expected {FIELD_COUNT}"
    date_text, location, name, basket, total, payment, card = fields
    # One scan over the other columns (joined by a comma, which no card run spans) is
    # much cheaper than one per column; the column is looked up only when there is a hit.
    others = ",".join(fields[:-1])
    if "\x00" in others or "\x00" in card:
        return "line contains a NUL character"
    if _CARD_LIKE.search(others):
        column = next(c for c, v in zip(COLUMNS, fields[:-1], strict=False) if _CARD_LIKE.search(v))
        return f"a card-like number appears in the {column} column"

    date_problem = _date_problem(date_text.strip())
    if date_problem is not None:
        return date_problem

    if not location.strip():
        return "branch (location) is empty"
    if _too_long(location.strip(), MAX_BRANCH_BYTES):
        return f"branch (location) is longer than {MAX_BRANCH_BYTES} bytes"
    if _too_long(name.strip(), MAX_NAME_BYTES):
        return f"customer name is longer than {MAX_NAME_BYTES} bytes"
    if not basket.strip():
        return "basket is empty"
    if _too_long(basket, MAX_BASKET_BYTES):
        return f"basket is longer than {MAX_BASKET_BYTES} bytes"

    total_value = total.strip()
    if not total_value:
        return "total is empty"
    if _NEGATIVE_AMOUNT.fullmatch(total_value):
        return f"total {_quoted(total_value)} is negative"
    if _AMOUNT.fullmatch(total_value) is None:
        return f"total {_quoted(total_value)} is not an amount with at most 2 decimals"

    payment_type = payment.strip().upper()
    if payment_type not in ("CARD", "CASH"):
        if not payment_type:
            return "payment type is empty"
        return f"payment type {_quoted(payment.strip())} is not CARD or CASH"
    card_value = card.strip()
    if payment_type == "CARD":
        if not card_value:
            return "card payment has no card number"
        if normalise_card_number(card_value) is None:
            return "card number is not 12-19 digits"
    elif card_value:
        return "cash payment has a card number"
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
_RE2_SPACE = r"[\s\p{Z}\x{1c}-\x{1f}\x{85}]"
_RE2_CARD_LIKE = r"\p{Nd}(?:[\s\p{Z}\x{1c}-\x{1f}\x{85}-]*\p{Nd}){11,}"
# After trimming ASCII spaces, a value must not start or end with any other space-like
# character, so that the trimmed value equals Python's str.strip() of it.
_RE2_EDGE_SPACE = f"^{_RE2_SPACE}|{_RE2_SPACE}$"


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


def validate_block(rows: pa.Table) -> BlockResult:
    """Validate a block (the seven export columns and `line_number`) in bulk."""
    columns = [rows.column(name).combine_chunks() for name in COLUMNS]
    date, location, name, basket, total, payment, card = columns
    checks: list[pa.Array] = []
    for column in columns:
        checks.append(pc.invert(pc.match_substring(column, "\x00")))
    for column in columns[:-1]:
        checks.append(pc.invert(pc.match_substring_regex(column, _RE2_CARD_LIKE)))
    date = _trimmed(date, checks)
    checks.append(pc.match_substring_regex(date, r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}$"))
    location = _trimmed(location, checks)
    checks.append(pc.greater(pc.utf8_length(location), 0))
    checks.append(pc.less_equal(pc.binary_length(location), MAX_BRANCH_BYTES))
    name = _trimmed(name, checks)
    checks.append(pc.less_equal(pc.binary_length(name), MAX_NAME_BYTES))
    checks.append(pc.greater(pc.utf8_length(_trimmed(basket, checks)), 0))
    checks.append(pc.less_equal(pc.binary_length(basket), MAX_BASKET_BYTES))
    total = _trimmed(total, checks)
    checks.append(pc.match_substring_regex(total, r"^\d{1,10}(?:\.\d{1,2})?$"))
    payment = pc.utf8_upper(_trimmed(payment, checks))
    is_card = pc.equal(payment, "CARD")
    card = _trimmed(card, checks)
    digits = pc.replace_substring_regex(card, r"[ \t\n\r\f\v-]", "")
    checks.append(
        pc.or_(
            pc.and_(is_card, pc.match_substring_regex(digits, r"^\d{12,19}$")),
            pc.and_(pc.equal(payment, "CASH"), pc.equal(pc.utf8_length(card), 0)),
        )
    )
    ok = _all(checks)
    # Dates that match the pattern may still not exist (31/02): check each distinct one.
    distinct_dates = pc.unique(pc.filter(date, ok)).to_pylist()
    missing = [value for value in distinct_dates if _date_problem(value) is not None]
    if missing:
        ok = pc.and_(ok, pc.invert(pc.is_in(date, value_set=pa.array(missing, pa.string()))))

    fast = pa.table(
        {
            "line_number": pc.cast(rows.column("line_number"), pa.int32()),
            "transaction_date": date,
            "branch_name": location,
            "customer_name": pc.if_else(pc.equal(pc.utf8_length(name), 0), None, name),
            "basket": basket,
            "total_amount": pc.cast(pc.if_else(ok, total, "0"), pa.decimal128(12, 2)),
            "payment_type": payment,
            "card_digits": pc.if_else(is_card, digits, None),
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
        checked = validate_fields(line_number, fields)
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
