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
