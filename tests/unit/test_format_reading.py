"""Export formats: encodings, NUL bytes, headers by name, drift, foreign files (issue 15).

These run the pure reading and validation path (`inspect_file` -> `read_blocks` ->
`validate_block`), with no database.
"""

from __future__ import annotations

import codecs
import csv
import io
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.columns import SYNONYMS, normalise_name
from loader.contract import COLUMNS, LineRules
from loader.reading import FileFacts, inspect_file, read_blocks
from loader.validation import reject_malformed, validate_block

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
RULES = LineRules(date(2000, 1, 1), datetime(2030, 1, 1), Decimal("10000.00"))
HEADER = list(COLUMNS)
CARD_ROW = [
    "25/08/2021 09:00",
    "Chesterfield",
    "Ann Lee",
    "Large Latte - 2.45, Regular Mocha - 2.30",
    "4.75",
    "CARD",
    "4111111111111111",
]
CASH_ROW = [
    "25/08/2021 09:05",
    "Chesterfield",
    "Bo Chan",
    "Regular Latte - 2.15",
    "2.15",
    "CASH",
    "",
]


Quoting = Literal[0, 1, 2, 3]


def csv_text(rows: list[list[str]], end: str = "\r\n", quoting: Quoting = csv.QUOTE_MINIMAL) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=end, quoting=quoting).writerows(rows)
    return buffer.getvalue()


def read(data: bytes) -> tuple[FileFacts, list[dict[str, object]], list[tuple[int, str]]]:
    """Facts, accepted rows (by line) and (line, reason) of refused lines."""
    facts = inspect_file(io.BytesIO(data))
    if facts.refusal is not None:
        return facts, [], []
    accepted: list[dict[str, object]] = []
    refused: list[tuple[int, str]] = []
    for block in read_blocks(io.BytesIO(data), facts, block_bytes=4096):
        result = validate_block(block.rows, RULES)
        accepted.extend(result.accepted.to_pylist())
        refused.extend((row.line_number, row.reason) for row in result.rejected)
        refused.extend(
            (
                line.line_number,
                reject_malformed(
                    line.line_number, line.text, line.field_count, line.expected_fields
                ).reason,
            )
            for line in block.malformed
        )
    return facts, sorted(accepted, key=lambda row: int(str(row["line_number"]))), sorted(refused)


def sample_text() -> str:
    return (SAMPLES / "chesterfield_25-08-2021_09-00-00.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("encoding", "mark", "name"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8", codecs.BOM_UTF8, "utf-8"),
        ("utf-16-le", codecs.BOM_UTF16_LE, "utf-16-le"),
        ("utf-16-be", codecs.BOM_UTF16_BE, "utf-16-be"),
        ("utf-32-le", codecs.BOM_UTF32_LE, "utf-32-le"),
        ("utf-32-be", codecs.BOM_UTF32_BE, "utf-32-be"),
    ],
)
def test_unicode_exports_with_a_mark_load_every_row(encoding: str, mark: bytes, name: str) -> None:
    text = sample_text()
    facts, accepted, refused = read(mark + text.encode(encoding))
    assert facts.encoding == name and facts.refusal is None
    assert facts.header == tuple(COLUMNS)
    assert refused == []
    assert [row["line_number"] for row in accepted] == list(range(2, 270))
    _, utf8_rows, _ = read(text.encode("utf-8"))
    assert accepted == utf8_rows


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-32-be"])
def test_line_numbers_hold_in_every_encoding(encoding: str) -> None:
    name_over_two_lines = [*CASH_ROW[:2], "Ann\r\nLee", *CASH_ROW[3:]]
    text = csv_text([HEADER, CARD_ROW, name_over_two_lines, [], ["a", "b"], CASH_ROW])
    mark = codecs.BOM_UTF16_LE if encoding == "utf-16-le" else codecs.BOM_UTF32_BE
    facts, accepted, refused = read(mark + text.encode(encoding))
    assert facts.encoding == encoding
    assert [row["line_number"] for row in accepted] == [2, 3, 7]
    assert refused == [(6, "line: has 2 fields, expected 7")]
    assert accepted[1]["customer_name"] == "Ann\r\nLee"


def test_windows_1252_is_the_fallback() -> None:
    data = csv_text([HEADER, [*CASH_ROW[:2], "Zoë Café", *CASH_ROW[3:]]]).encode("cp1252")
    facts, accepted, _ = read(data)
    assert facts.encoding == "cp1252"
    assert accepted[0]["customer_name"] == "Zoë Café"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (csv_text([HEADER, CARD_ROW]).encode("utf-16-le"), "NUL bytes"),
        (csv_text([HEADER, CARD_ROW]).encode("utf-32-be"), "NUL bytes"),
        (csv_text([HEADER, CASH_ROW]).encode() + b"\x00\r\n", "NUL bytes"),
        (codecs.BOM_UTF16_LE + "date\x00,x".encode("utf-16-le"), "NUL characters"),
        (codecs.BOM_UTF16_LE + b"d\x00\x00\xd8a\x00", "utf-16-le byte-order mark but is not"),
        (csv_text([HEADER, CASH_ROW]).encode() + b"\x81\x8d\n", "neither UTF-8 nor Windows-1252"),
    ],
)
def test_files_that_would_put_nuls_or_garbage_into_text_are_refused(data: bytes, why: str) -> None:
    facts, accepted, refused = read(data)
    assert facts.refusal is not None and why in facts.refusal
    assert facts.encoding is None
    assert (accepted, refused) == ([], [])


def test_columns_are_read_by_name_in_any_order_with_synonyms() -> None:
    header = [" Total ", '"Card No."', "TIMESTAMP", "Items", "customer", "Payment", "Branch"]
    order = [4, 6, 0, 3, 2, 5, 1]
    text = csv_text([header] + [[row[i] for i in order] for row in (CARD_ROW, CASH_ROW)])
    facts, accepted, refused = read(text.encode())
    assert facts.header == tuple(name.strip() for name in header)
    assert facts.unknown_columns == ()
    assert refused == []
    assert [row["transaction_date"] for row in accepted] == [CARD_ROW[0], CASH_ROW[0]]
    assert [row["branch_name"] for row in accepted] == ["Chesterfield", "Chesterfield"]
    assert [row["card_digits"] for row in accepted] == ["4111111111111111", None]


def test_extra_columns_are_drift_never_loaded() -> None:
    text = csv_text(
        [[*HEADER, "tip", "", "Till ID"]]
        + [[*row, "0.50", "4111 1111 1111 1111", "T-9"] for row in (CARD_ROW, CASH_ROW)]
    )
    facts, accepted, refused = read(text.encode())
    assert facts.unknown_columns == ("tip", "(unnamed column 9)", "Till ID")
    assert len(accepted) == 2 and refused == []
    assert set(accepted[0]) == {
        "line_number",
        "transaction_date",
        "branch_name",
        "customer_name",
        "basket",
        "total_amount",
        "payment_type",
        "card_digits",
    }


def test_a_malformed_line_in_a_drifted_file_counts_the_file_s_columns() -> None:
    text = csv_text([[*HEADER, "tip"], [*CARD_ROW, "0.50"], CARD_ROW])
    _, accepted, refused = read(text.encode())
    assert len(accepted) == 1
    assert refused == [(3, "line: has 7 fields, expected 8")]


def test_files_without_customer_columns_load_anonymous() -> None:
    header = ["date", "location", "basket", "total", "payment_type"]
    rows = [[row[0], row[1], row[3], row[4], row[5]] for row in (CARD_ROW, CASH_ROW)]
    facts, accepted, refused = read(csv_text([header, *rows]).encode())
    assert facts.layout.absent == ("name", "card_number")
    assert refused == []
    assert [(r["customer_name"], r["card_digits"], r["payment_type"]) for r in accepted] == [
        (None, None, "CARD"),
        (None, None, "CASH"),
    ]


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        (["date", "location", "name", "total", "payment_type", "card_number"], "basket"),
        (["id", "customer", "items", "amount", "timestamp"], "location, payment_type"),
        (["Date", "Branch", "Basket"], "total, payment_type"),
    ],
)
def test_a_header_without_required_columns_refuses_the_file(
    header: list[str], missing: str
) -> None:
    facts, _, _ = read(csv_text([header, ["x"] * len(header)]).encode())
    assert facts.refusal is not None
    assert facts.refusal.endswith(f"required columns missing: {missing}")
    assert "columns found: " + ", ".join(header) in facts.refusal
    assert facts.header == tuple(header)


def test_a_header_naming_one_column_twice_is_refused() -> None:
    facts, _, _ = read(csv_text([[*HEADER, "branch"], [*CASH_ROW, "x"]]).encode())
    assert facts.refusal == "header: columns 'location' and 'branch' both hold location"


def test_a_card_number_in_the_header_refuses_the_file_and_is_masked() -> None:
    facts, _, _ = read(csv_text([[*HEADER, "4111.1111.1111.1111"], [*CASH_ROW, ""]]).encode())
    assert facts.refusal == "header: a card number appears in the header"
    assert facts.header is not None and facts.header[-1] == "************1111"


def test_a_file_from_another_system_is_refused_whole() -> None:
    lines = [
        ["1", "Ann Lee", "[{'product': 'Latte', 'size': 'Large', 'price': 2.45}]", "2.45", "card"],
        ["2", "Bo Chan", "[{'product': 'Mocha', 'size': 'Regular', 'price': 2.3}]", "2.3", "cash"],
    ]
    facts, _, _ = read(csv_text(lines).encode())
    assert facts.refusal is not None
    assert facts.refusal.startswith("the file is not a till export: no header names its columns")
    assert "its lines have 5 fields" in facts.refusal


def test_header_less_exports_are_read_by_position() -> None:
    text = csv_text([["oops", "not", "a", "line"], CARD_ROW, CASH_ROW])
    facts, accepted, refused = read(text.encode())
    assert facts.header is None and facts.refusal is None
    assert [row["line_number"] for row in accepted] == [2, 3]
    assert refused == [(1, "line: has 4 fields, expected 7")]


def test_synonym_table_is_normalised() -> None:
    assert all(normalise_name(name) == name for name in SYNONYMS)
    assert set(SYNONYMS.values()) == set(COLUMNS)
    assert normalise_name(' "Payment Type" ') == "payment_type"


def test_an_excel_re_save_loads() -> None:
    text = csv_text([HEADER, CARD_ROW, CASH_ROW], quoting=csv.QUOTE_ALL)
    facts, accepted, refused = read(codecs.BOM_UTF8 + text.encode())
    assert facts.encoding == "utf-8" and facts.header == tuple(COLUMNS)
    assert refused == [] and len(accepted) == 2


def _sample_rows() -> list[list[str]]:
    with (SAMPLES / "longridge_26-11-2023_09-00-00.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))[1:]


_SAMPLE_ROWS = _sample_rows()


@settings(max_examples=60, deadline=None)
@given(
    st.permutations(range(len(COLUMNS))),
    st.lists(st.sampled_from(range(len(_SAMPLE_ROWS))), min_size=1, max_size=40),
    st.sampled_from(["\r\n", "\n"]),
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
)
def test_permuting_the_columns_of_a_valid_file_loads_the_same_rows(
    order: list[int], picks: list[int], end: str, quoting: Quoting
) -> None:
    rows = [_SAMPLE_ROWS[index] for index in picks]
    original = csv_text([HEADER, *rows], end)
    permuted = csv_text(
        [[HEADER[i] for i in order]] + [[r[i] for i in order] for r in rows], end, quoting
    )
    _, expected, expected_refused = read(original.encode())
    facts, accepted, refused = read(permuted.encode())
    assert facts.refusal is None and facts.unknown_columns == ()
    assert expected_refused == refused == []
    assert accepted == expected
    assert len(accepted) == len(rows)
