"""`loader.cards`: card numbers found and masked in any disguise, ordinary text left alone."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from loader.cards import (
    RE2_CARD_LIKE_RUN,
    SEPARATORS,
    WHITESPACE,
    contains_card_like_number,
    contains_card_number,
    find_card_numbers,
    luhn_valid,
    mask_all_digits,
    mask_card_numbers,
)


def with_check_digit(body: str) -> str:
    """`body` plus the digit that makes it pass Luhn (computed here, independently)."""
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char)
        if index % 2 == 0:  # doubled, counting from the check digit's left neighbour
            value *= 2
            value = value - 9 if value > 9 else value
        total += value
    return body + str((10 - total % 10) % 10)


def test_whitespace_list_is_every_python_space() -> None:
    assert set(WHITESPACE) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "4111_1111_1111_1111",
        "4111\u20131111\u20131111\u20131111",
        "4111\u20141111\u20141111\u20141111",
        "4111 - 1111 - 1111 - 1111",
        "4\x001\x001\x001\x001\x001\x001\x001\x001\x001\x001\x001\x001\x001\x001\x001",
        "\\x00".join("4111") + "\\x00 \\x00" + "\\x00".join("1" * 12),
        "\uff14\uff11\uff11\uff11 " + "\uff11" * 4 + " " + "\uff11" * 4 + " " + "\uff11" * 4,
        "41\u200b11111111111111",
        "call me on 4111.1111.1111.1111 please",
        "25-08-2021 4111 1111 1111 1111",
        "12-05-2021-4111111111111111",
    ],
)
def test_disguised_numbers_are_found_and_masked(text: str) -> None:
    found = find_card_numbers(text)
    assert [match.digits[-4:] for match in found] == ["1111"]
    assert contains_card_number(text) and contains_card_like_number(text)
    masked = mask_card_numbers(text)
    assert not contains_card_like_number(masked)
    assert masked.count("1") == 4
    assert "*" * 8 in masked


@pytest.mark.parametrize(
    "text",
    [
        "25/08/2021 09:00",
        "Large Latte - 2.45, Regular Mocha - 2.30",
        "12.95",
        "10000.00",
        "chesterfield_25-08-2021_09-00-00.csv",
        "landing/branch2_25-08-2021_09-00-00.CSV",
        "report_01-08-2021_31-08-2021.csv",
        "2021-08-25T09:00:00Z",
        "25/08/2021 09:00,Chesterfield,Ann Lee,Large Latte - 2.45,2.45,CASH,",
        "Ann Lee",
        "call 01234 567890",
        "************1111",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert find_card_numbers(text) == []
    assert not contains_card_number(text)
    assert mask_card_numbers(text) == text


def test_non_luhn_runs_are_masked_but_not_reported_as_cards() -> None:
    # A real export's card number that fails Luhn (most of them do).
    number = "5494173772652516"
    assert not luhn_valid(number)
    assert find_card_numbers(number) == []
    assert contains_card_like_number(number)
    assert mask_card_numbers(f"x {number} y") == "x ************2516 y"
    assert mask_card_numbers("12 digits 123456789012") == "12 digits ********9012"


def test_card_column_masking_keeps_only_four_digits() -> None:
    assert mask_all_digits("4111 1111 111") == "**** ***1 111"
    assert mask_all_digits("abc") == "abc"
    assert mask_all_digits("123") == "123"


_bodies = st.integers(min_value=12, max_value=18).flatmap(
    lambda length: st.text(alphabet="0123456789", min_size=length, max_size=length)
)
_gaps = st.lists(
    st.sampled_from([*SEPARATORS, "\x00", "\\x00", "\u200b", "\ufeff"]), min_size=0, max_size=3
).map("".join)
_border = st.sampled_from(["", " ", "x", "Ann ", "name: ", ",", "\n", "€"])


def _disguise(digits: str, gaps: list[str]) -> str:
    return "".join(digit + gap for digit, gap in zip(digits, [*gaps, ""], strict=False))


def _groups(text: str) -> list[str]:
    groups, current = [], ""
    for char in text.replace("\\x00", ""):
        if char.isdecimal():
            current += char
        elif char in SEPARATORS and current:
            groups.append(current)
            current = ""
    return [*groups, current] if current else groups


def _looks_like_a_timestamp(groups: list[str]) -> bool:
    # A loose, independent over-approximation of "date followed by a time or a date".
    sizes = [len(group) for group in groups]
    return any(
        sizes[index : index + 3] in ([2, 2, 4], [4, 2, 2], [1, 2, 4], [2, 1, 4], [1, 1, 4])
        or sizes[index : index + 3] in ([4, 1, 2], [4, 2, 1], [4, 1, 1])
        for index in range(len(sizes))
    )


@settings(max_examples=400, deadline=None)
@given(_bodies, st.data(), _border, _border)
def test_any_luhn_number_in_any_disguise_is_found_and_masked(
    body: str, data: st.DataObject, before: str, after: str
) -> None:
    number = with_check_digit(body)
    gaps = data.draw(st.lists(_gaps, min_size=len(number) - 1, max_size=len(number) - 1))
    disguised = _disguise(number, gaps)
    assume(not _looks_like_a_timestamp(_groups(disguised)))
    text = before + disguised + after
    assert luhn_valid(number)
    found = find_card_numbers(text)
    assert [(match.start, match.end) for match in found] == [
        (len(before), len(before) + len(disguised))
    ]
    assert found[0].digits in number
    masked = mask_card_numbers(text)
    assert number not in masked.replace("\\x00", "")
    assert sum(char.isdecimal() for char in masked) <= 4 + sum(
        char.isdecimal() for char in before + after
    )
    assert not contains_card_number(masked)


_texts = st.lists(
    st.sampled_from(
        [*"0123456789 -./_:,aZ\u2013\x00\\x\u200b", "\\x00", "4111", "1111", "25/08/2021"]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(_texts)
def test_masking_is_idempotent_and_the_block_filter_is_a_superset(text: str) -> None:
    masked = mask_card_numbers(text)
    assert mask_card_numbers(masked) == masked
    assert not contains_card_like_number(masked)
    if contains_card_like_number(text):
        matches = pc.match_substring_regex(pa.array([text]), RE2_CARD_LIKE_RUN)
        assert matches.to_pylist() == [True]


_moments = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2999, 12, 31))


@settings(max_examples=300, deadline=None)
@given(_moments, st.sampled_from(["Chesterfield", "Store 2", "leeds"]), st.integers(0, 3))
def test_dates_totals_baskets_and_file_names_are_never_cards(
    moment: datetime, branch: str, pence: int
) -> None:
    texts = [
        f"{moment:%d/%m/%Y %H:%M}",
        f"{branch.lower()}_{moment:%d-%m-%Y_%H-%M-%S}.csv",
        f"landing/{branch}_{moment:%d-%m-%Y_%H-%M-%S}.CSV",
        f"{moment:%Y-%m-%d %H:%M:%S}",
        f"{moment:%Y-%m-%dT%H:%M:%S}.123456+00:00",
        f"{branch}_{moment:%d-%m-%Y}_{moment + timedelta(days=pence):%d-%m-%Y}.csv",
        f"Large Latte - {pence}.45, Regular Mocha - 2.{pence}0",
        f"{pence}.{pence}5",
    ]
    for text in texts:
        assert mask_card_numbers(text) == text, text
        assert not contains_card_number(text), text
