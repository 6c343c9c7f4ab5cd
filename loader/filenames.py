"""Branch and export time from a till export's file name.

Exports are named `branch_dd-mm-YYYY_HH-MM-SS.csv` (e.g. `chesterfield_25-08-2021_09-00-00.csv`).
The branch part is lower case in the file name while rows spell it `Chesterfield`, so it is
title-cased, with `-` and `_` read as spaces, to match the rows' `location` column. The time
is the café's local (Europe/London) wall-clock time and is kept naive, as the ledger stores it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from loader.cards import contains_card_like_number

_EXPORT_NAME = re.compile(
    r"^(?P<branch>.+?)_(?P<day>\d{2})-(?P<month>\d{2})-(?P<year>\d{4})"
    r"_(?P<hour>\d{2})-(?P<minute>\d{2})-(?P<second>\d{2})\.csv$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ExportName:
    branch_name: str
    exported_at: datetime


def parse_export_name(source_key: str) -> ExportName | None:
    """The branch and local export time of `source_key`, or None if the name does not parse."""
    match = _EXPORT_NAME.match(PurePosixPath(source_key).name)
    if match is None:
        return None
    try:
        exported_at = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
        )
    except ValueError:
        return None
    branch = " ".join(re.split(r"[-_\s]+", match["branch"].strip())).title()
    return ExportName(branch_name=branch, exported_at=exported_at) if branch else None


def refusal_of_name(source_key: str) -> str | None:
    """Why a file is refused by its name alone (None: the name is fine).

    The S3 path decides what is loaded, not the bucket notification's filter: every object
    under the landing prefix reaches the loader, which takes `.csv` files in any case. A key
    holding a card number (or anything the masker would mask) is refused: it is stored only
    masked, and two masked keys must never stand for two files that load.
    """
    if contains_card_like_number(source_key):
        return "file name: a card number, or a number like one, appears in the file name"
    if not PurePosixPath(source_key).name.lower().endswith(".csv"):
        return "file name: not a .csv file"
    return None
