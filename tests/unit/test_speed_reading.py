"""The reader's shortcuts keep physical line numbers: line breaks are counted row by row only
in the columns whose bytes hold one, and blank lines are looked for only when the first
column has an empty value. These build large blocks where the shortcuts apply to most
columns and not to one, and compare every line number with the file's own lines."""

from __future__ import annotations

import io
import random

import pytest

from loader.reading import inspect_file, read_blocks

HEADER = "date,location,name,basket,total,payment_type,card_number"
ROW = '25/08/2021 09:00,Chesterfield,Ann Lee,"Large Latte - 2.45, Regular Mocha - 2.30",4.75,CASH,'


def physical_start_lines(records: list[str], first_line: int) -> dict[int, str]:
    """Each record's first physical line number, by the record's first field."""
    starts: dict[int, str] = {}
    line = first_line
    for record in records:
        starts[line] = record.split(",", 1)[0]
        breaks = record.count("\r\n") + record.replace("\r\n", "").count("\r")
        breaks += record.replace("\r\n", "").count("\n")
        line += 1 + breaks
    return starts


@pytest.mark.parametrize("line_end", ["\r\n", "\n", "\r"])
def test_line_numbers_hold_when_one_column_of_one_row_spans_lines(line_end: str) -> None:
    rng = random.Random(5)
    records: list[str] = []
    for index in range(6000):
        day = f"{index % 28 + 1:02d}/08/2021 09:00"
        name = "Ann Lee"
        roll = rng.random()
        if roll < 0.002:
            name = '"Ann' + rng.choice(["\r\n", "\n", "\r"]) + 'Lee"'
        elif roll < 0.004:
            name = '"Ann\r\n\r\nLee\nJr"'
        records.append(ROW.replace("25/08/2021 09:00", day).replace("Ann Lee", name))
    data = (HEADER + line_end + line_end.join(records) + line_end).encode()
    expected = physical_start_lines(records, 2)
    stream = io.BytesIO(data)
    facts = inspect_file(stream)
    found: dict[int, str] = {}
    for block in read_blocks(stream, facts, block_bytes=1 << 16):
        assert block.malformed == []
        lines = block.rows.column("line_number").to_pylist()
        dates = block.rows.column("date").to_pylist()
        found.update(zip(lines, dates, strict=True))
    assert found == expected


def test_blank_lines_are_skipped_and_rows_with_an_empty_first_field_are_kept() -> None:
    records = [ROW, "", ROW.replace("25/08/2021 09:00", ""), ROW, "", "", ROW]
    data = ("\r\n".join([HEADER, *records]) + "\r\n").encode()
    stream = io.BytesIO(data)
    facts = inspect_file(stream)
    blocks = list(read_blocks(stream, facts))
    lines = [line for block in blocks for line in block.rows.column("line_number").to_pylist()]
    assert lines == [2, 4, 5, 8]
    dates = [date for block in blocks for date in block.rows.column("date").to_pylist()]
    assert dates == ["25/08/2021 09:00", "", "25/08/2021 09:00", "25/08/2021 09:00"]
