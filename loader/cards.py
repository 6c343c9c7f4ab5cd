"""Card numbers in any disguise: the one detector and masker for everything the loader
stores, logs or measures (fields, raw lines, reasons, headers, file names, S3 keys).

A *card number* is 13-19 digits that pass the Luhn check, however they are written:

* separators between digits: any whitespace, hyphens, dots, slashes, underscores, en and em
  dashes (and the other Unicode dashes and the minus sign), up to three in a row
  (`4111 - 1111 - ...`); a digit group ends where a separator stands;
* invisible characters anywhere between digits: NUL, NUL spelled out as the text `\\x00`
  (what a UTF-16 file read one byte at a time turns into once NULs are made printable),
  zero-width spaces and joiners, soft hyphens, byte-order marks;
* any Unicode decimal digits (fullwidth, Arabic-Indic, ...), not only ASCII.

Digits joined that way form a *run*. Inside a run, a timestamp (a date such as `25-08-2021`
or `2021/08/25` followed by a time `_09-00-00` or by a second date) is not part of a
number: it splits the run, so that export file names (`chesterfield_25-08-2021_09-00-00.csv`)
are never taken for cards. What remains are *segments* of digit groups.

* `find_card_numbers` reports a segment holding a Luhn-valid number of 13-19 digits made of
  whole groups (`4111 1111 1111 1111`, or the same run followed by more groups); a group of
  more than 19 digits is searched window by window.
* `mask_card_numbers` is deliberately wider: it masks every segment of 12 or more digits,
  Luhn-valid or not, keeping only its last four (`************1111`). Tills write card
  numbers that fail Luhn (only 59 of the 544 in the real samples pass), the card column
  accepts 12-19 digits, and masking a number that is not a card costs nothing. Ordinary
  text (dates, times, totals, baskets with prices) never holds such a segment and is left
  exactly as it was; masking is idempotent.
* `contains_card_like_number` is the same wide test, for rules that must hold a
  line back whenever its text would need masking.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

MIN_CARD_DIGITS: Final = 13
MAX_CARD_DIGITS: Final = 19
# Anything the card column would accept as a card number (12-19 digits) is masked.
MIN_MASKED_DIGITS: Final = 12
KEPT_DIGITS: Final = 4
MAX_SEPARATORS_IN_A_ROW: Final = 3

# Python's str.isspace() characters, listed so that the RE2 patterns below can use them
# (a test checks the list against str.isspace over all of Unicode).
WHITESPACE: Final = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
DASHES: Final = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
SEPARATORS: Final = WHITESPACE + DASHES + "._/"
# Characters that hide between digits without separating them.
INVISIBLES: Final = "\x00\u00ad\u200b\u200c\u200d\u2060\ufeff"
SPELLED_NUL: Final = "\\x00"


def _python_class(chars: str) -> str:
    return "[" + "".join(re.escape(char) for char in chars) + "]"


def _re2_class(chars: str) -> str:
    return "[" + "".join(f"\\x{{{ord(char):x}}}" for char in chars) + "]"


def _run_pattern(first: str, digit: str, separator: str, invisible: str, min_digits: int) -> str:
    hidden = f"(?:{invisible}|\\\\x00)*"
    gap = f"{hidden}(?:{separator}{hidden}){{0,{MAX_SEPARATORS_IN_A_ROW}}}"
    return f"{first}(?:{gap}{digit}){{{min_digits - 1},}}"


_DIGIT: Final = r"\d"  # Python's \d is every Unicode decimal digit (category Nd)
# A run never starts inside a spelled-out NUL (the zeros of `\x00` are not digits).
_FIRST_DIGIT: Final = r"(?<!\\x)(?<!\\x0)\d"
_SEPARATOR: Final = _python_class(SEPARATORS)
_INVISIBLE: Final = _python_class(INVISIBLES)
_RUN: Final = re.compile(
    _run_pattern(_FIRST_DIGIT, _DIGIT, _SEPARATOR, _INVISIBLE, MIN_MASKED_DIGITS)
)
# Tokens of a run: a spelled-out NUL (skipped whole), a digit, or a separator.
_TOKEN: Final = re.compile(f"(\\\\x00)|({_DIGIT})|{_SEPARATOR}")

# For pyarrow's RE2 kernels: true for every text holding a run of 12 or more digits, so a
# block check with it never lets through a value that `contains_card_like_number` flags.
RE2_CARD_LIKE_RUN: Final = _run_pattern(
    r"\p{Nd}", r"\p{Nd}", _re2_class(SEPARATORS), _re2_class(INVISIBLES), MIN_MASKED_DIGITS
)
# The same character classes for RE2: Python's whitespace (what `str.strip()` removes) and
# the separators a card number may be written with.
RE2_WHITESPACE: Final = _re2_class(WHITESPACE)
RE2_SEPARATOR: Final = _re2_class(SEPARATORS)


@dataclass(frozen=True, slots=True)
class CardMatch:
    """A card number found in a text: where it stands (`text[start:end]`) and its digits
    (ASCII, without separators)."""

    start: int
    end: int
    digits: str


@dataclass(frozen=True, slots=True)
class _Group:
    digits: str  # ASCII, whatever digits the text used
    start: int
    end: int


def luhn_valid(digits: str) -> bool:
    """Whether a string of ASCII digits passes the Luhn check."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _groups(text: str, start: int, end: int) -> list[_Group]:
    """The digit groups of the run `text[start:end]`: digits between separators."""
    groups: list[_Group] = []
    digits: list[str] = []
    group_start = group_end = start
    for match in _TOKEN.finditer(text, start, end):
        if match.group(1):
            continue  # a spelled-out NUL hides between digits like a NUL does
        char = match.group()
        if match.group(2):
            if not digits:
                group_start = match.start()
            digits.append(str(unicodedata.decimal(char)))
            group_end = match.end()
        elif digits:
            groups.append(_Group("".join(digits), group_start, group_end))
            digits = []
    if digits:
        groups.append(_Group("".join(digits), group_start, group_end))
    return groups


def _number(group: _Group) -> int:
    return int(group.digits)


def _is_date(day: _Group, month: _Group, year: _Group) -> bool:
    return (
        len(day.digits) in (1, 2)
        and len(month.digits) in (1, 2)
        and len(year.digits) == 4
        and 1 <= _number(day) <= 31
        and 1 <= _number(month) <= 12
        and 1000 <= _number(year) <= 2999
    )


def _date_at(groups: list[_Group], index: int) -> bool:
    three = groups[index : index + 3]
    return len(three) == 3 and (_is_date(*three) or _is_date(three[2], three[1], three[0]))


def _date_length(groups: list[_Group], index: int) -> int:
    """How many groups from `index` spell a timestamp (0 if none).

    A timestamp is a date followed by a time of at least hours and minutes
    (`25-08-2021_09-00-00`), or a date followed by another (`01-08-2021_31-08-2021`). A
    date alone does not count: a card number may be grouped like one (`12-05-2021-4111...`).
    """
    if not _date_at(groups, index):
        return 0
    if _date_at(groups, index + 3):
        return 6
    length = 3
    for limit in (23, 59, 59):  # hours, minutes, seconds
        following = groups[index + length] if index + length < len(groups) else None
        if following is None or len(following.digits) != 2 or _number(following) > limit:
            break
        length += 1
    return length if length >= 5 else 0


def _segments(text: str) -> Iterator[list[_Group]]:
    """Runs of digit groups long enough to mask, with dates and times taken out."""
    for run in _RUN.finditer(text):
        groups = _groups(text, run.start(), run.end())
        segment: list[_Group] = []
        index = 0
        while index < len(groups):
            date_length = _date_length(groups, index)
            if date_length:
                yield segment
                segment = []
                index += date_length
                continue
            segment.append(groups[index])
            index += 1
        yield segment


def _digit_count(segment: list[_Group]) -> int:
    return sum(len(group.digits) for group in segment)


def _luhn_number_in(segment: list[_Group]) -> str | None:
    """A Luhn-valid 13-19 digit number made of whole groups of the segment, if any."""
    for first in range(len(segment)):
        digits = ""
        for group in segment[first:]:
            if len(group.digits) > MAX_CARD_DIGITS:
                found = _luhn_window(group.digits)
                if found:
                    return found
                break
            digits += group.digits
            if len(digits) > MAX_CARD_DIGITS:
                break
            if len(digits) >= MIN_CARD_DIGITS and luhn_valid(digits):
                return digits
    return None


def _luhn_window(digits: str) -> str | None:
    for size in range(MAX_CARD_DIGITS, MIN_CARD_DIGITS - 1, -1):
        for start in range(len(digits) - size + 1):
            window = digits[start : start + size]
            if luhn_valid(window):
                return window
    return None


def find_card_numbers(text: str) -> list[CardMatch]:
    """Every card number (13-19 digits passing Luhn, in any disguise) in `text`."""
    found: list[CardMatch] = []
    for segment in _segments(text):
        if _digit_count(segment) < MIN_CARD_DIGITS:
            continue
        digits = _luhn_number_in(segment)
        if digits is not None:
            found.append(CardMatch(segment[0].start, segment[-1].end, digits))
    return found


def contains_card_number(text: str) -> bool:
    """Whether `text` holds a card number (13-19 digits passing Luhn) in any disguise."""
    return bool(_RUN.search(text)) and bool(find_card_numbers(text))


def contains_card_like_number(text: str) -> bool:
    """Whether `text` holds anything `mask_card_numbers` would mask (12+ digits, any disguise)."""
    if not _RUN.search(text):
        return False
    return any(_digit_count(segment) >= MIN_MASKED_DIGITS for segment in _segments(text))


def mask_card_numbers(text: str) -> str:
    """`text` with every card-like number replaced by stars and at most its last four digits.

    The whole span of the number goes, separators and hidden characters included:
    `x 4111-1111-1111-1111 y` becomes `x ************1111 y`.
    """
    if not _RUN.search(text):
        return text
    pieces: list[str] = []
    position = 0
    for segment in _segments(text):
        count = _digit_count(segment)
        if count < MIN_MASKED_DIGITS:
            continue
        start, end = segment[0].start, segment[-1].end
        last_four = "".join(group.digits for group in segment)[-KEPT_DIGITS:]
        pieces.append(text[position:start])
        pieces.append("*" * (count - KEPT_DIGITS) + last_four)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def mask_all_digits(text: str) -> str:
    """`text` with every decimal digit but the last four replaced by a star.

    For the card column of a refused line, where whatever stands is treated as a card
    number, however short or oddly written.
    """
    positions = [index for index, char in enumerate(text) if char.isdecimal()]
    hidden = set(positions[:-KEPT_DIGITS]) if len(positions) > KEPT_DIGITS else set()
    return "".join("*" if index in hidden else char for index, char in enumerate(text))


def strip_hidden(text: str) -> str:
    """`text` without the characters that hide between digits (NULs, spelled-out NULs, ...)."""
    return re.sub(f"{_INVISIBLE}|\\\\x00", "", text)
