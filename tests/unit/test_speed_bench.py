"""The loader benchmark's own parts: the file it loads and the table it reports.

Speed goals live in `make bench`, never in a test: these check that the benchmark measures
what it says (a file in the export format that loads whole, with about half of its card
lines bringing a new card) and reports its figures as `make bench` rows.
"""

from __future__ import annotations

from pathlib import Path

from bench.bench_load import BenchRow, SizeFigures, synthesise, table_rows
from loader.contract import LineRules
from loader.reading import inspect_file, read_blocks
from loader.validation import validate_block


def test_the_synthesised_export_loads_whole_with_many_distinct_cards(tmp_path: Path) -> None:
    path = tmp_path / "chesterfield_13-01-2024_23-59-00.csv"
    synthesise(path, 4000)
    data = path.read_bytes()
    assert data.startswith(b"date,location,name,basket,total,payment_type,card_number\r\n")
    assert data.count(b"\r\n") == 4001 and b'"' in data  # CRLF lines, quoted baskets
    accepted = 0
    cards: list[str] = []
    with path.open("rb") as stream:
        facts = inspect_file(stream)
        for block in read_blocks(stream, facts):
            assert block.malformed == []
            checked = validate_block(block.rows, LineRules.for_load())
            assert checked.rejected == []
            accepted += checked.accepted.num_rows
            cards += [c for c in checked.accepted.column("card_digits").to_pylist() if c]
    assert accepted == 4000
    assert 0.6 < len(cards) / accepted < 0.8
    assert 0.4 < len(set(cards)) / len(cards) < 0.9


def test_the_table_reports_each_figure_against_its_anchor() -> None:
    small = SizeFigures(250_000, 39.0, 0.25, 0.2, 1.0, 180.0, 0.8)
    large = SizeFigures(1_000_000, 155.0, 1.0, 0.8, 2.0, 200.0, 2.5)
    rows = table_rows(small, large, naive_rate=20_000)
    assert all(isinstance(row, BenchRow) for row in rows)
    by_name = {row.name: row for row in rows}
    versus_copy = by_name["loader vs raw COPY, 1M rows / 155 MiB"]
    assert versus_copy.figure == "500k rows/s"
    assert versus_copy.anchor.startswith("raw COPY into a text table 1,000k rows/s")
    assert versus_copy.ratio.startswith("0.50x")
    assert by_name["loader vs raw COPY, 250k rows / 39 MiB"].ratio.startswith("0.25x")
    assert by_name["loader vs the server's floor, 1M rows"].ratio == "1.25x"
    assert by_name["loader vs a row-at-a-time loader"].ratio == "25.0x"
    assert by_name["loader peak RSS, 1M rows"].figure == "200 MiB"
    assert by_name["loader peak RSS, 1M rows"].ratio == "1.11x"
