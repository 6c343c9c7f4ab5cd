"""The line contract: what a loadable till-export line is, written once.

The loader accepts a line only if every model downstream can take it apart; dbt's models
and `docs/contracts.md` (its line contract) follow these constants and patterns. Each check
below is a pure function returning the rule a value breaks (a sentence without any value
from the line) or None; `loader.validation` applies them one line at a time and, with the
same patterns, to whole blocks with pyarrow's RE2 kernels (the patterns are written in the
subset of regular expression syntax that Python's `re` and RE2 read alike).

Vocabulary is not part of the contract: a size or product nobody knows loads, and dbt flags
and counts it.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Final

from loader.cards import SEPARATORS
from loader.errors import ConfigurationError

# The export's columns, in the order of the real files (and of header-less files).
COLUMNS: Final = ("date", "location", "name", "basket", "total", "payment_type", "card_number")
REQUIRED_COLUMNS: Final = ("date", "location", "basket", "total", "payment_type")
OPTIONAL_COLUMNS: Final = ("name", "card_number")
# What a reason may name before its colon: a column, or the line as a whole.
REASON_FIELDS: Final = ("line", *COLUMNS)

# Column sizes of raw.transactions (docs/contracts.md), in UTF-8 bytes as Redshift counts.
MAX_BRANCH_BYTES: Final = 256
MAX_NAME_BYTES: Final = 256
MAX_BASKET_BYTES: Final = 65535

MAX_BASKET_ITEMS: Final = 100
MAX_PRICE_INTEGER_DIGITS: Final = 6
DEFAULT_MAX_TOTAL: Final = Decimal("10000.00")
DEFAULT_EARLIEST_DATE: Final = date(2000, 1, 1)
# The ceiling is the load's clock plus a day: enough for any time zone and a till whose
# clock runs a little fast, not enough for a year typed wrong.
LATEST_AHEAD: Final = timedelta(days=1)
EARLIEST_DATE_VARIABLE: Final = "CAFE_EARLIEST_TRANSACTION_DATE"
MAX_TOTAL_VARIABLE: Final = "CAFE_MAX_TRANSACTION_TOTAL"
CARD_NUMBER_DIGITS: Final = (12, 19)
PAYMENT_TYPES: Final = ("CARD", "CASH")

# -- patterns shared by Python (`re`) and pyarrow (RE2) -------------------------------------

DATE_PATTERN: Final = r"([0-9]{2})/([0-9]{2})/([0-9]{4}) ([0-9]{2}):([0-9]{2})"
AMOUNT_PATTERN: Final = r"[0-9]{1,10}(?:\.[0-9]{1,2})?"
NEGATIVE_AMOUNT_PATTERN: Final = r"-[0-9]+(?:\.[0-9]+)?"
PRICE_PATTERN: Final = rf"[0-9]{{1,{MAX_PRICE_INTEGER_DIGITS}}}(?:\.[0-9]{{1,2}})?"


def _positive_price_pattern(digits: int) -> str:
    # RE2 has no lookahead: spell out "at most `digits` integer digits, not all zero" by the
    # position of the first non-zero digit, or a zero integer part with non-zero pence.
    integer = "|".join(
        f"0{{{zeros}}}[1-9][0-9]{{0,{digits - zeros - 1}}}" for zeros in range(digits)
    )
    return rf"(?:(?:{integer})(?:\.[0-9]{{1,2}})?|0{{1,{digits}}}\.(?:0[1-9]|[1-9][0-9]?))"


POSITIVE_PRICE_PATTERN: Final = _positive_price_pattern(MAX_PRICE_INTEGER_DIGITS)
# A word: no space inside, not a lone dash (that separates product, flavour and price), and
# not ending in a comma (a comma and a space separate items).
WORD_PATTERN: Final = r"(?:[^ ]+[^ ,]|[^ ,-])"
NAME_PATTERN: Final = rf"{WORD_PATTERN}(?: {WORD_PATTERN})*"
ITEM_PATTERN: Final = (
    rf"{WORD_PATTERN} {NAME_PATTERN}(?: - {NAME_PATTERN})? - {POSITIVE_PRICE_PATTERN}"
)
ITEM_SEPARATOR: Final = ", "
BASKET_PATTERN: Final = rf"{ITEM_PATTERN}(?:{ITEM_SEPARATOR}{ITEM_PATTERN})*"
# The shortest item the grammar allows (`S P - 1`): a basket of more than MAX_BASKET_ITEMS
# items is at least this long, so only longer baskets need their items counted.
MIN_ITEM_CHARS: Final = 7
MIN_CHARS_OVER_MAX_ITEMS: Final = (MAX_BASKET_ITEMS + 1) * (MIN_ITEM_CHARS + 2) - 2
CARD_DIGITS_PATTERN: Final = rf"[0-9]{{{CARD_NUMBER_DIGITS[0]},{CARD_NUMBER_DIGITS[1]}}}"

_DATE: Final = re.compile(DATE_PATTERN)
_AMOUNT: Final = re.compile(AMOUNT_PATTERN)
_NEGATIVE_AMOUNT: Final = re.compile(NEGATIVE_AMOUNT_PATTERN)
_PRICE: Final = re.compile(PRICE_PATTERN)
_WORD: Final = re.compile(WORD_PATTERN)
_NAME: Final = re.compile(NAME_PATTERN)
_ITEM: Final = re.compile(ITEM_PATTERN)
_CARD_DIGITS: Final = re.compile(CARD_DIGITS_PATTERN)
_CARD_SEPARATORS: Final = re.compile("[" + "".join(re.escape(c) for c in SEPARATORS) + "]")


class ContractError(ConfigurationError):
    """A contract setting (environment variable) does not hold a usable value."""


@dataclass(frozen=True, slots=True)
class LineRules:
    """The settings of the contract for one load: date bounds and the largest total."""

    earliest: date
    latest: datetime  # naive, compared with the export's local minute
    max_total: Decimal

    @classmethod
    def for_load(cls, now: datetime | None = None) -> LineRules:
        """The rules in force now: the environment's settings, the clock plus a day."""
        clock = now or datetime.now(UTC)
        return cls(
            earliest=_earliest_from_environment(),
            latest=clock.replace(tzinfo=None, second=0, microsecond=0) + LATEST_AHEAD,
            max_total=_max_total_from_environment(),
        )


def _earliest_from_environment() -> date:
    text = os.environ.get(EARLIEST_DATE_VARIABLE, "").strip()
    if not text:
        return DEFAULT_EARLIEST_DATE
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ContractError(f"{EARLIEST_DATE_VARIABLE} must be a date as YYYY-MM-DD") from None


def _max_total_from_environment() -> Decimal:
    text = os.environ.get(MAX_TOTAL_VARIABLE, "").strip()
    if not text:
        return DEFAULT_MAX_TOTAL
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value <= 0 or value >= Decimal(10) ** 10:
        raise ContractError(f"{MAX_TOTAL_VARIABLE} must be a positive amount below 10^10")
    return value


def reason(field: str, rule: str) -> str:
    """A rejection reason: `<field>: <rule>`, the rule never quoting the line."""
    if field not in REASON_FIELDS:
        raise ValueError(f"unknown reason field {field!r}")
    return f"{field}: {rule}"


# -- the checks -----------------------------------------------------------------------------


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
def date_form_problem(text: str) -> str | None:
    """The rule a trimmed date breaks before its bounds are considered, or None."""
    # A day's export repeats the same few hundred minutes: each distinct one is checked once.
    if not text:
        return "is empty"
    if _DATE.fullmatch(text) is None:
        return "is not in dd/mm/YYYY HH:MM form"
    if parse_export_date(text) is None:
        return "does not exist"
    return None


def date_problem(text: str, rules: LineRules) -> str | None:
    """The rule a trimmed date breaks, or None."""
    problem = date_form_problem(text)
    if problem is not None:
        return problem
    moment = parse_export_date(text)
    assert moment is not None
    if moment.date() < rules.earliest:
        return f"is before {rules.earliest:%Y-%m-%d}, the earliest transaction date"
    if moment > rules.latest:
        return "is more than a day after the load"
    return None


def item_problem(item: str) -> str | None:
    """What is wrong with one basket item, or None when it follows the grammar."""
    if _ITEM.fullmatch(item):
        return None
    if not item.strip():
        return "is empty"
    head, dash, price = item.rpartition(" - ")
    if not dash:
        return "has no price"
    if not _PRICE.fullmatch(price):
        return f"does not end with a price (up to {MAX_PRICE_INTEGER_DIGITS} digits and 2 decimals)"
    if Decimal(price) == 0:
        return "has a price of zero"
    size, space, description = head.partition(" ")
    if not space or not _WORD.fullmatch(size):
        return "has no size before its product"
    parts = description.split(" - ")
    if len(parts) > 2:
        return "has more than one flavour"
    if not all(_NAME.fullmatch(part) for part in parts):
        return "has an empty or malformed product or flavour"
    return "does not follow <size> <product>[ - <flavour>] - <price>"


def basket_problem(basket: str) -> str | None:
    """The rule a basket (as exported) breaks, or None."""
    if not basket.strip():
        return "is empty"
    if len(basket) > MAX_BASKET_BYTES or len(basket.encode("utf-8")) > MAX_BASKET_BYTES:
        return f"is longer than {MAX_BASKET_BYTES} bytes"
    items = basket.split(ITEM_SEPARATOR)
    if len(items) > MAX_BASKET_ITEMS:
        return f"has more than {MAX_BASKET_ITEMS} items"
    for number, item in enumerate(items, start=1):
        problem = item_problem(item)
        if problem is not None:
            return f"item {number} {problem}"
    return None


def total_problem(text: str, rules: LineRules) -> str | None:
    """The rule a trimmed total breaks, or None."""
    if not text:
        return "is empty"
    if _NEGATIVE_AMOUNT.fullmatch(text):
        return "is negative"
    if _AMOUNT.fullmatch(text) is None:
        return "is not an amount with at most 2 decimals"
    if Decimal(text) > rules.max_total:
        return f"is more than {rules.max_total}"
    return None


def payment_type_problem(normalised: str) -> str | None:
    """The rule a trimmed, upper-cased payment type breaks, or None."""
    if not normalised:
        return "is empty"
    if normalised not in PAYMENT_TYPES:
        return "is not CARD or CASH"
    return None


def normalise_card_number(text: str) -> str | None:
    """The card's ASCII digits without separators, or None unless they are 12-19 digits."""
    digits = _CARD_SEPARATORS.sub("", text)
    return digits if _CARD_DIGITS.fullmatch(digits) else None


def card_number_problem(payment_type: str, card: str, *, column_present: bool = True) -> str | None:
    """The rule a trimmed card number breaks for its (valid) payment type, or None.

    A file without a card number column (a branch exporting no card data) has anonymous card
    payments: the empty value stands for the absent column and is not a missing number.
    """
    if payment_type == "CARD":
        if not card and not column_present:
            return None
        if not card:
            return "a card payment has no card number"
        if normalise_card_number(card) is None:
            low, high = CARD_NUMBER_DIGITS
            return f"is not {low}-{high} digits"
    elif card:
        return "a cash payment has a card number"
    return None
