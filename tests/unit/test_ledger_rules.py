"""The ledger's pure parts: what a name refuses, what a ledger text may hold, how a source
version is written down, how a deadline counts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loader.batches import NO_DEADLINE, Deadline
from loader.errors import CardKeyMismatch
from loader.filenames import refusal_of_name
from loader.ledger import FileVersion, SourceFacts, Status, ledger_row
from loader.schema import LEDGER_COLUMNS
from loader.service import MAX_LEDGER_TEXT_BYTES, error_text_of, stored_key

CARD_REFUSAL = "file name: a card number, or a number like one, appears in the file name"


@pytest.mark.parametrize(
    ("key", "refusal"),
    [
        ("landing/chesterfield_25-08-2021_09-00-00.csv", None),
        ("landing/Chesterfield_25-08-2021_09-00-00.CSV", None),
        ("export.Csv", None),
        ("landing/notes.txt", "file name: not a .csv file"),
        ("landing/export.csv.gz", "file name: not a .csv file"),
        ("landing/sub/", "file name: not a .csv file"),
        ("landing/4111 1111 1111 1111.csv", CARD_REFUSAL),
        ("landing/4111\u20131111\u20131111\u20131111_01-02-2024_09-00-00.csv", CARD_REFUSAL),
        ("landing/ann_4111.1111.1111.1111/x.txt", CARD_REFUSAL),
    ],
)
def test_what_a_name_refuses(key: str, refusal: str | None) -> None:
    assert refusal_of_name(key) == refusal
    # A key that loads is stored as it is; only a refused key is ever changed by masking.
    assert (stored_key(key) == key) == (refusal != CARD_REFUSAL)


def test_an_error_text_is_one_masked_bounded_line() -> None:
    error = RuntimeError("line 1 holds 4111.1111.1111.1111\nand a NUL \x00 " + "é" * 5000)
    text = error_text_of(error)
    assert text.startswith("RuntimeError: line 1 holds ************1111 and a NUL \\x00 ")
    assert "\n" not in text and "\x00" not in text
    assert len(text.encode()) <= MAX_LEDGER_TEXT_BYTES
    text.encode().decode()  # cut on a character boundary
    assert error_text_of(CardKeyMismatch("local-v1")).startswith("the card-hash key in use")


def test_the_source_version_keeps_what_s3_said() -> None:
    assert SourceFacts().version_text is None
    assert SourceFacts(sequencer="0055aed6dcd90281e5").version_text == (
        "sequencer=0055AED6DCD90281E5"
    )
    assert SourceFacts(sequencer="AB", version_id="3/L4kqtJ").version_text == (
        "sequencer=AB version=3/L4kqtJ"
    )
    assert SourceFacts(version_id="null").version_text == "version=null"


def test_a_ledger_row_has_every_column_but_the_writers_clock() -> None:
    file = FileVersion(
        "landing/ludlow_02-03-2024_09-00-00.csv",
        "a" * 64,
        10,
        SourceFacts(datetime(2024, 3, 2, 9, 1, tzinfo=UTC), "AB", "v1"),
    )
    row = ledger_row(file, Status.DUPLICATE, duplicate_of="landing/other.csv")
    assert list(row) == [column for column in LEDGER_COLUMNS if column != "finished_at"]
    assert (row["branch_name"], row["status"], row["source_version"]) == (
        "Ludlow",
        "duplicate",
        "sequencer=AB version=v1",
    )


def test_a_deadline_keeps_its_reserve_for_answering() -> None:
    now = [100.0]
    deadline = Deadline.after(60, reserve_seconds=10, clock=lambda: now[0])
    assert (deadline.remaining(), deadline.remaining_for_work()) == (60, 50)
    now[0] = 155
    assert (deadline.remaining(), deadline.remaining_for_work()) == (5, -5)
    remaining_ms = [30_000]
    lambda_like = Deadline.counting_down(lambda: remaining_ms[0] / 1000, reserve_seconds=10)
    assert lambda_like.remaining_for_work() == 20
    remaining_ms[0] = 12_000
    assert lambda_like.remaining_for_work() == 2
    assert NO_DEADLINE.remaining() is None and NO_DEADLINE.remaining_for_work() is None
