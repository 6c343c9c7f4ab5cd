"""Reading exports: encodings, headers, quoting, line numbers, malformed and empty files.

Everything runs through the pure part of the loader (inspect, read, validate, hash) into
an in-memory warehouse, so these tests need no database.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader.batches import BatchFactory
from loader.hashing import CardKey
from loader.ledger import FileVersion, LoadResult, RowCounts, Status, result_of
from loader.reading import inspect_file
from loader.service import load_file
from loader.validation import RejectedRow

KEY = CardKey(b"k" * 32, "test-v1")
HEADER = "date,location,name,basket,total,payment_type,card_number"
CARD_LINE = (
    '25/08/2021 09:00,Chesterfield,Ann Lee,"Large Latte - 2.45, Regular Mocha - 2.30",'
    "4.75,CARD,4111111111111111"
)
CASH_LINE = "25/08/2021 09:05,Chesterfield,Bo Chan,Regular Latte - 2.15,2.15,CASH,"


@dataclass
class MemoryWarehouse:
    """Keeps what a real warehouse would store; enough to check counts and contents."""

    rows: list[dict[str, object]] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    results: list[LoadResult] = field(default_factory=list)

    def load(self, file: FileVersion, batches: BatchFactory) -> LoadResult:
        counts = RowCounts()
        for batch in batches():
            self.rows.extend(batch.rows.to_pylist())
            self.rejected.extend(batch.rejected)
            counts += batch.counts
        result = result_of(file, Status.LOADED, counts, None)
        self.results.append(result)
        return result

    def record_attempt(self, file: FileVersion, status: Status, error_text: str) -> LoadResult:
        result = result_of(file, status, RowCounts(), error_text)
        self.results.append(result)
        return result


def load(data: bytes | str) -> tuple[LoadResult, MemoryWarehouse]:
    raw = data.encode() if isinstance(data, str) else data
    warehouse = MemoryWarehouse()
    result = load_file(io.BytesIO(raw), "test.csv", warehouse=warehouse, key=KEY)
    return result, warehouse


def lines_of(warehouse: MemoryWarehouse) -> list[int]:
    return sorted(int(str(row["line_number"])) for row in warehouse.rows)


def test_header_bom_and_crlf() -> None:
    result, warehouse = load("\ufeff" + HEADER + "\r\n" + CARD_LINE + "\r\n" + CASH_LINE + "\r\n")
    assert result.status is Status.LOADED
    assert (result.counts.read, result.counts.loaded, result.counts.rejected) == (2, 2, 0)
    assert lines_of(warehouse) == [2, 3]
    first = min(warehouse.rows, key=lambda row: int(str(row["line_number"])))
    assert first["basket"] == "Large Latte - 2.45, Regular Mocha - 2.30"
    assert first["card_hash"] and first["card_key_version"] == "test-v1"
    assert "4111111111111111" not in repr(warehouse.rows)


def test_header_less_file_starts_at_line_one() -> None:
    result, warehouse = load(CARD_LINE + "\n" + CASH_LINE)
    assert result.counts.loaded == 2
    assert lines_of(warehouse) == [1, 2]


def test_empty_and_header_only_files_load_zero_rows() -> None:
    for data in ("", "\ufeff", HEADER, HEADER + "\r\n", "\r\n\r\n"):
        result, warehouse = load(data)
        assert result.status is Status.LOADED, data
        assert result.counts == RowCounts(0, 0, 0)
        assert warehouse.rows == []


def test_quoted_newlines_and_malformed_lines_keep_physical_line_numbers() -> None:
    text = "\r\n".join(
        [
            HEADER,
            '25/08/2021 09:00,Chesterfield,"Ann ""Nan""\r\nLee","Large Latte - 2.45",2.45,CASH,',
            "only,three,fields",
            "",
            CASH_LINE,
            CASH_LINE + ",extra",
            '"a\nb",c',
            CASH_LINE,
        ]
    )
    result, warehouse = load(text)
    assert lines_of(warehouse) == [2, 6, 10]
    assert [row.line_number for row in warehouse.rejected] == [4, 7, 8]
    assert warehouse.rejected[0].reason.startswith("line: has 3 fields")
    assert warehouse.rejected[1].reason.startswith("line: has 8 fields")
    names = {row["line_number"]: row["customer_name"] for row in warehouse.rows}
    assert names[2] == 'Ann "Nan"\r\nLee'
    assert result.counts == RowCounts(6, 3, 3)


def test_windows_1252_file_is_decoded() -> None:
    data = (HEADER + "\r\n" + CASH_LINE.replace("Bo Chan", "Zoë Café")).encode("cp1252")
    result, warehouse = load(data)
    assert result.status is Status.LOADED
    assert warehouse.rows[0]["customer_name"] == "Zoë Café"


def test_file_that_is_neither_utf8_nor_cp1252_is_refused() -> None:
    data = (HEADER + "\n" + CASH_LINE).encode() + b"\x81\x8d\n"
    result, warehouse = load(data)
    assert result.status is Status.REFUSED
    assert result.error_text == "the file is neither UTF-8 nor Windows-1252 text"
    assert result.counts == RowCounts(0, 0, 0)
    assert warehouse.rows == []


def test_inspect_reports_checksum_and_header() -> None:
    facts = inspect_file(io.BytesIO((HEADER + "\n").encode()))
    assert facts.has_header and facts.encoding == "utf-8" and len(facts.checksum) == 64
    assert not inspect_file(io.BytesIO(CASH_LINE.encode())).has_header


def test_each_distinct_card_is_hashed_once(monkeypatch: object) -> None:
    import loader.hashing as hashing

    calls: list[str] = []
    original = hashing.hash_card

    def counting(key: CardKey, digits: str) -> str:
        calls.append(digits)
        return original(key, digits)

    monkeypatch.setattr(hashing, "hash_card", counting)  # type: ignore[attr-defined]
    result, warehouse = load(HEADER + "\n" + (CARD_LINE + "\n") * 50)
    assert result.counts.loaded == 50
    assert calls == ["4111111111111111"]
    assert len({row["card_hash"] for row in warehouse.rows}) == 1


_pieces = st.sampled_from(
    [
        CARD_LINE,
        CASH_LINE,
        HEADER,
        "\ufeff",
        "\r\n",
        "\n",
        "\r",
        ",",
        '"',
        '""',
        "a,b",
        "31/02/2024 09:00",
        "CARD",
        "4111 1111 1111 1111",
        ",,,,,,",
        "\x00",
        "é",
    ]
)
_texts = st.lists(st.one_of(_pieces, st.text(max_size=8)), max_size=30).map("".join)


def check_invariants(data: bytes) -> None:
    result, warehouse = load(data)
    assert result.counts.read == result.counts.loaded + result.counts.rejected
    assert len(warehouse.rows) == result.counts.loaded
    assert len(warehouse.rejected) == result.counts.rejected
    if result.status is not Status.LOADED:
        assert result.status is Status.REFUSED and result.counts == RowCounts()
    numbers = lines_of(warehouse) + [row.line_number for row in warehouse.rejected]
    assert len(numbers) == len(set(numbers))
    physical_lines = len(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"))
    assert all(1 <= number <= physical_lines for number in numbers)
    stored = repr(warehouse.rows) + repr(warehouse.rejected)
    assert "4111111111111111" not in stored and "4111 1111 1111 1111" not in stored


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_texts)
def test_arbitrary_csv_text_never_crashes_and_counts_add_up(text: str) -> None:
    check_invariants(text.encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    check_invariants(data)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.text(max_size=6), max_size=9), max_size=12),
    st.sampled_from(["\r\n", "\n", "\r"]),
)
def test_random_fields_and_line_ends(rows: list[list[str]], end: str) -> None:
    import csv

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=end).writerows(rows)
    check_invariants(buffer.getvalue().encode())
