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

import functools
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


@dataclass(frozen=True)
class _Needles:
    """What a scan looks for, prepared once for every text it reads.

    A known card (digits once normalised) can only sit inside a run of digits of the
    normalised text, so the card net looks up that run's windows of each card length in a
    set: the same answer as `card in text` for every card, in one pass over the text.
    """

    cards: frozenset[str]
    card_lengths: tuple[int, ...]
    other_cards: tuple[str, ...]  # the rare known card that is not all digits once normalised
    values: tuple[str, ...]  # casefolded

    @classmethod
    def of(cls, known_cards: Iterable[str], known_values: Iterable[str]) -> _Needles:
        flat = {normalised(card) for card in known_cards} - {""}
        digits = frozenset(card for card in flat if card.isascii() and card.isdigit())
        return cls(
            cards=digits,
            card_lengths=tuple(sorted({len(card) for card in digits})),
            other_cards=tuple(sorted(flat - digits)),
            values=tuple(value.casefold() for value in known_values if value),
        )

    def known_cards_in(self, flat: str) -> list[str]:
        found: list[str] = []
        if self.cards:
            shortest = self.card_lengths[0]
            for run in _DIGIT_RUN.findall(flat):
                if len(run) < shortest:
                    continue
                for length in self.card_lengths:
                    found.extend(
                        run[start : start + length]
                        for start in range(len(run) - length + 1)
                        if run[start : start + length] in self.cards
                    )
        found.extend(card for card in self.other_cards if card in flat)
        return sorted(set(found))


_DIGIT_RUN = re.compile(r"[0-9]+")


def scan_text(
    text: str,
    where: str,
    *,
    known_cards: Iterable[str] = (),
    known_values: Iterable[str] = (),
) -> list[Finding]:
    """Card numbers and known personal values in one text."""
    return _scan(text, where, _needles(tuple(known_cards), tuple(known_values)))


@functools.lru_cache(maxsize=8)
def _needles(known_cards: tuple[str, ...], known_values: tuple[str, ...]) -> _Needles:
    # A caller scanning many texts one by one (each string of a JSON document) passes the
    # same cards every time: they are prepared once.
    return _Needles.of(known_cards, known_values)


def _scan(text: str, where: str, needles: _Needles) -> list[Finding]:
    findings = [
        Finding(where, f"known card {_masked(card)}")
        for card in needles.known_cards_in(normalised(text))
    ]
    if needles.values:
        lowered = text.casefold()
        findings.extend(
            Finding(where, f"known value of {len(value)} characters")
            for value in needles.values
            if value in lowered
        )
    findings.extend(
        Finding(where, f"card number {_masked(match.digits)}")
        for match in find_card_numbers(_HEX_TOKEN.sub(" id ", text))
    )
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
    needles = _needles(tuple(known_cards), tuple(known_values))
    return [
        finding
        for number, line in enumerate(text.splitlines(), start=1)
        for finding in _scan(scannable_log_line(line), f"{where}:{number}", needles)
    ]


def scan_database(
    url: str,
    schemas: Sequence[str] = ("raw",),
    *,
    known_cards: Iterable[str] = (),
    known_values: Iterable[str] = (),
) -> list[Finding]:
    """Scan every column (as text) of every table and view in `schemas`."""
    needles = _needles(tuple(known_cards), tuple(known_values))
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
                findings.extend(_scan(value, where, needles))
    return findings


def scan_log_files(
    paths: Iterable[Path],
    *,
    known_cards: Iterable[str] = (),
    known_values: Iterable[str] = (),
) -> list[Finding]:
    """Scan log files line by line (missing files are skipped: not every run writes each)."""
    needles = _needles(tuple(known_cards), tuple(known_values))
    findings: list[Finding] = []
    for path in paths:
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, text in enumerate(handle, start=1):
                findings.extend(_scan(text, f"{path.name}:{number}", needles))
    return findings
