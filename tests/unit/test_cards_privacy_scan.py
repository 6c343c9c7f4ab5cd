"""The privacy scan helper (`tests/privacy_scan.py`) finds what it must, and only that."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from loader.cards import find_card_numbers
from tests.privacy_scan import normalised, scan_log_files, scan_log_text, scan_text

REAL_EXPORT_CARD = "5494173772652516"  # from the real samples; fails Luhn


def test_known_cards_are_found_in_any_disguise() -> None:
    disguised = [
        "5494.1737.7265.2516",
        "5494\u20131737\u20137265\u20132516",
        "\\x00".join(REAL_EXPORT_CARD),
        "\x00".join(REAL_EXPORT_CARD),
        "5494_1737 7265/2516",
    ]
    for text in disguised:
        findings = scan_text(f"name: {text}", "t", known_cards=[REAL_EXPORT_CARD])
        assert [finding.what for finding in findings] == ["known card ************2516"], text


def test_unknown_luhn_cards_are_found_and_reported_masked() -> None:
    findings = scan_text("call 4111 1111 1111 1111", "raw.x.y")
    assert [str(finding) for finding in findings] == ["raw.x.y: card number ************1111"]


def test_known_values_and_ordinary_text() -> None:
    assert scan_text("hello Ann Lee", "t", known_values=["ann lee"])
    ordinary = [
        "25/08/2021 09:00,Chesterfield,,Large Latte - 2.45,2.45,CASH,",
        "chesterfield_25-08-2021_09-00-00.csv",
        "************2516",
        hashlib.sha256(b"x").hexdigest(),
        str(uuid.UUID(int=4111111111111111)),
    ]
    for text in ordinary:
        assert scan_text(text, "t", known_cards=[REAL_EXPORT_CARD]) == [], text
    assert normalised("4 1-1.1/1_1\u20131") == "4111111"


def test_ids_inside_a_log_line_are_not_cards_but_a_card_beside_them_is() -> None:
    # A uuid4 whose first groups are all decimal: its digits join into a Luhn-valid run.
    request_id = "41111111-1111-4111-9111-1111111111ab"
    assert find_card_numbers(request_id), "the id must look like a card to the Luhn net"
    line = f'{{"message":"file processed","function_request_id":"{request_id}","rows":3}}'
    assert scan_text(line, "log:1") == []
    leaky = line.replace('"rows":3', '"key":"leeds_4111.1111.1111.1111.csv"')
    assert [finding.what for finding in scan_text(leaky, "log:1")] == [
        "card number ************1111"
    ]


def test_metric_documents_are_scanned_by_their_texts_only() -> None:
    epoch = "1764528852031"  # an EMF timestamp in milliseconds that passes Luhn
    assert find_card_numbers(epoch)
    metric = json.dumps({"_aws": {"Timestamp": int(epoch)}, "LoadErrors": 1.0})
    assert scan_log_text(f"plain line\n{metric}\n", "stdout") == []
    leaky = json.dumps({"_aws": {"Timestamp": 1}, "file": "4111 1111 1111 1111"})
    assert [finding.where for finding in scan_log_text(f"ok\n{leaky}", "stdout")] == ["stdout:2"]


def test_log_files_are_scanned_line_by_line(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("ok\nERROR: invalid input 5494 1737 7265 2516\n")
    findings = scan_log_files([log, tmp_path / "missing.log"], known_cards=[REAL_EXPORT_CARD])
    assert [finding.where for finding in findings] == ["server.log:2"]


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="0123456789 -._/x\u200b", max_size=60),
    cards=st.lists(st.text(alphabet="0123456789", min_size=3, max_size=8), max_size=4),
)
def test_the_known_card_net_finds_exactly_the_cards_contained_in_the_normalised_text(
    text: str, cards: list[str]
) -> None:
    # The scan looks cards up by the digit runs of the text; the plain rule is containment.
    findings = scan_text(text, "t", known_cards=cards)
    found = {finding.what for finding in findings if finding.what.startswith("known card")}
    flat = normalised(text)
    assert found == {f"known card {'*' * max(len(c) - 4, 0)}{c[-4:]}" for c in cards if c in flat}
