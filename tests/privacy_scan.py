"""Privacy scans for tests: card numbers (in any disguise) and other personal values in
texts, in every column of a database's tables, and in log files.

Two nets, so that a scan does not only repeat the loader's own logic:

* known values: the caller passes the card numbers (and names) it planted or that its input
  holds; a text matches when, after removing NULs, spelled-out NULs (`\\x00`), invisible
  characters and every separator a disguise may use, it contains one of them. This does
  not depend on the Luhn check, so it also catches the real exports' card numbers, most of
  which fail it;
* any card number: `loader.cards.find_card_numbers` (13-19 digits passing Luhn in any
  disguise), for numbers the caller did not know about.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from loader.cards import find_card_numbers

# Everything a disguise may put between digits (an over-approximation is harmless here).
_HIDDEN = re.compile(r"\\x00|[\x00\u00ad\u200b-\u200d\u2060\ufeff]")
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212._/]+")
# Values that are machine identifiers (sha256 digests, HMACs, dbt's md5 surrogate keys,
# uuids): their digit runs are hex noise, so only the known-value net applies to them.
# Inside a longer text (a JSON log line holds a request id and a load id) they are cut out
# before the Luhn net runs: a uuid4 whose first groups happen to be decimal digits joins
# into a Luhn-valid run about once in a few hundred ids. No card is written in their shape.
_HEX_TOKEN = re.compile(
    r"(?<![0-9a-f])"
    r"(?:[0-9a-f]{64}|[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"(?![0-9a-f])"
)


@dataclass(frozen=True, slots=True)
class Finding:
    where: str  # e.g. `raw.rejected_rows.raw_line`, `dbt.log:12`
    what: str  # which value, masked: never the clear value in a test report

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def normalised(text: str) -> str:
    """`text` with hidden characters and separators removed, so disguised digits join up."""
    return _SEPARATORS.sub("", _HIDDEN.sub("", text))


def _masked(value: str) -> str:
    return "*" * max(len(value) - 4, 0) + value[-4:]


def scan_text(
    text: str,
    where: str,
    *,
    known_cards: Iterable[str] = (),
    known_values: Iterable[str] = (),
) -> list[Finding]:
    """Card numbers and known personal values in one text."""
    findings: list[Finding] = []
    flat = normalised(text)
    for card in known_cards:
        if normalised(card) in flat:
            findings.append(Finding(where, f"known card {_masked(normalised(card))}"))
    lowered = text.casefold()
    for value in known_values:
        if value and value.casefold() in lowered:
            findings.append(Finding(where, f"known value of {len(value)} characters"))
    for match in find_card_numbers(_HEX_TOKEN.sub(" id ", text)):
        findings.append(Finding(where, f"card number {_masked(match.digits)}"))
    return findings


def json_strings(document: Any) -> list[str]:
    """Every key and string value of a JSON document, one by one."""
    if isinstance(document, str):
        return [document]
    if isinstance(document, dict):
        return [
            text for key, value in document.items() for text in (str(key), *json_strings(value))
        ]
    if isinstance(document, list):
        return [text for value in document for text in json_strings(value)]
    return []


def scannable_log_line(line: str) -> str:
    """A log line as the scans read it: an EMF metric document by its texts only.

    Metric values and timestamps are numbers (a 13-digit epoch in milliseconds passes Luhn
    one time in ten); a card number could only hide in a name, a dimension or a string.
    """
    if '"_aws"' not in line:
        return line
    return "\n".join(json_strings(json.loads(line)))


def scan_log_text(
    text: str,
    where: str,
    *,
    known_cards: Iterable[str] = (),
    known_values: Iterable[str] = (),
) -> list[Finding]:
    """Card numbers and known values in a log's text, line by line (`where:<line>`)."""
    cards, values = list(known_cards), list(known_values)
    return [
        finding
        for number, line in enumerate(text.splitlines(), start=1)
        for finding in scan_text(
            scannable_log_line(line), f"{where}:{number}", known_cards=cards, known_values=values
        )
    ]


def scan_database(
    url: str,
    schemas: Sequence[str] = ("raw",),
    *,
    known_cards: Iterable[str] = (),
    known_values: Iterable[str] = (),
) -> list[Finding]:
    """Scan every column (as text) of every table and view in `schemas`."""
    cards, values = list(known_cards), list(known_values)
    findings: list[Finding] = []
    with psycopg.connect(url) as connection:
        columns = connection.execute(
            "select table_schema, table_name, column_name from information_schema.columns"
            " where table_schema = any(%s) order by 1, 2, ordinal_position",
            (list(schemas),),
        ).fetchall()
        for schema, table, column in columns:
            query = sql.SQL("select {column}::text from {table} where {column} is not null").format(
                column=sql.Identifier(column), table=sql.Identifier(schema, table)
            )
            where = f"{schema}.{table}.{column}"
            for (value,) in connection.execute(query):
                findings.extend(scan_text(value, where, known_cards=cards, known_values=values))
    return findings


def scan_log_files(
    paths: Iterable[Path],
    *,
    known_cards: Iterable[str] = (),
    known_values: Iterable[str] = (),
) -> list[Finding]:
    """Scan log files line by line (missing files are skipped: not every run writes each)."""
    cards, values = list(known_cards), list(known_values)
    findings: list[Finding] = []
    for path in paths:
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, text in enumerate(handle, start=1):
                findings.extend(
                    scan_text(text, f"{path.name}:{number}", known_cards=cards, known_values=values)
                )
    return findings
