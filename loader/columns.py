"""Which column of a file holds which field of the export: header mapping and the checks
that refuse a file from another system before any of its lines is read.

A header's names are matched after normalising (`normalise_name`: case, surrounding spaces
and quotes, and punctuation ignored) against the export's column names and a small table
of synonyms, in any order. `date`, `location`, `basket`, `total` and `payment_type` are
required; `name` and `card_number` are optional. Names that match nothing are drift: not
loaded, recorded. A file without a header is read by position, as the export writes it,
but only when its first lines look like the export (seven fields starting with a date);
otherwise it is a file from another system and is refused whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from loader.cards import contains_card_like_number, mask_card_numbers
from loader.contract import COLUMNS, DATE_PATTERN, REQUIRED_COLUMNS

# Normalised header name -> the export column it holds.
SYNONYMS: Final[Mapping[str, str]] = MappingProxyType(
    {
        **{name: name for name in COLUMNS},
        "datetime": "date",
        "date_time": "date",
        "timestamp": "date",
        "transaction_date": "date",
        "transaction_time": "date",
        "branch": "location",
        "branch_name": "location",
        "store": "location",
        "shop": "location",
        "site": "location",
        "customer": "name",
        "customer_name": "name",
        "items": "basket",
        "products": "basket",
        "order": "basket",
        "amount": "total",
        "total_amount": "total",
        "value": "total",
        "payment": "payment_type",
        "payment_method": "payment_type",
        "tender": "payment_type",
        "card": "card_number",
        "card_no": "card_number",
        "card_num": "card_number",
        "pan": "card_number",
    }
)
# How many of a header-less file's first lines are looked at to tell an export from a file
# of another system: one line that looks like the export is enough.
SNIFFED_LINES: Final = 10
MAX_NAME_CHARS: Final = 64

_NOT_A_NAME_CHARACTER = re.compile(r"[^0-9a-z]+")
_DATE_START = re.compile(r"\s*" + DATE_PATTERN)


class ForeignFile(ValueError):
    """The file is not a till export (or a header lacks required columns): refuse it whole."""


@dataclass(frozen=True, slots=True)
class ColumnLayout:
    """Where each export column sits in a file's lines.

    `positions[i]` is the index in a line of `COLUMNS[i]`, or None when the file lacks
    that (optional) column. `header` is the header's names as read, masked (None without a
    header); `unknown_columns` those that match no export column, in file order.
    """

    field_count: int
    positions: tuple[int | None, ...]
    header: tuple[str, ...] | None = None
    unknown_columns: tuple[str, ...] = ()

    @property
    def absent(self) -> tuple[str, ...]:
        return tuple(name for name, at in zip(COLUMNS, self.positions, strict=True) if at is None)


POSITIONAL: Final = ColumnLayout(len(COLUMNS), tuple(range(len(COLUMNS))))


def normalise_name(name: str) -> str:
    """`" Card No. "` -> `card_no`: lower case, punctuation and spaces as single `_`."""
    text = name.strip().strip("\"'").strip().lower()
    return _NOT_A_NAME_CHARACTER.sub("_", text).strip("_")


def starts_with_a_date(value: str) -> bool:
    return _DATE_START.match(value) is not None


def is_header(names: Sequence[str]) -> bool:
    """Whether a first line is a header: it does not start with a date and names at least
    two export columns (one could be a value such as `card` or `cash`)."""
    if not names or starts_with_a_date(names[0]):
        return False
    known = {SYNONYMS.get(normalise_name(name)) for name in names} - {None}
    return len(known) >= 2


def _shown(name: str, index: int) -> str:
    text = mask_card_numbers(name.strip())
    if len(text) > MAX_NAME_CHARS:
        text = text[: MAX_NAME_CHARS - 1] + "…"
    return text or f"(unnamed column {index + 1})"


def layout_of_header(names: Sequence[str]) -> ColumnLayout:
    """The layout a header gives, or `ForeignFile` naming what was found and what is missing."""
    shown = tuple(_shown(name, index) for index, name in enumerate(names))
    if any(contains_card_like_number(name) for name in names):
        raise ForeignFile("header: a card number appears in the header")
    positions: dict[str, int] = {}
    unknown: list[str] = []
    for index, name in enumerate(names):
        column = SYNONYMS.get(normalise_name(name))
        if column is None:
            unknown.append(shown[index])
        elif column in positions:
            first = shown[positions[column]]
            raise ForeignFile(f"header: columns {first!r} and {shown[index]!r} both hold {column}")
        else:
            positions[column] = index
    missing = [column for column in REQUIRED_COLUMNS if column not in positions]
    if missing:
        raise ForeignFile(
            "the file is not a till export: columns found: "
            + ", ".join(shown)
            + "; required columns missing: "
            + ", ".join(missing)
        )
    return ColumnLayout(
        field_count=len(names),
        positions=tuple(positions.get(column) for column in COLUMNS),
        header=shown,
        unknown_columns=tuple(unknown),
    )


def check_header_less(first_lines: Sequence[Sequence[str]]) -> None:
    """Refuse (`ForeignFile`) a header-less file none of whose first lines looks like the export."""
    sniffed = [fields for fields in first_lines[:SNIFFED_LINES] if any(f.strip() for f in fields)]
    if not sniffed:
        return
    if any(len(fields) == len(COLUMNS) and starts_with_a_date(fields[0]) for fields in sniffed):
        return
    counts = sorted({len(fields) for fields in sniffed})
    raise ForeignFile(
        "the file is not a till export: no header names its columns and none of its first "
        f"{len(sniffed)} lines splits into the export's {len(COLUMNS)} columns "
        f"({', '.join(COLUMNS)}) starting with a date; its lines have "
        + " or ".join(str(count) for count in counts)
        + " fields"
    )


def layout_of(first_lines: Sequence[Sequence[str]]) -> ColumnLayout:
    """The layout of a file from its first parsed lines (blank ones included, as `[]`)."""
    if first_lines and is_header(first_lines[0]):
        return layout_of_header(first_lines[0])
    check_header_less(first_lines)
    return POSITIONAL
