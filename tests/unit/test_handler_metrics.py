"""The loader's duration metric never writes a float's long tail of digits into its output."""

from __future__ import annotations

import random

from loader.cards import find_card_numbers
from loader.handler import duration_milliseconds


def test_durations_are_whole_microseconds() -> None:
    assert duration_milliseconds(0.007822) == 7.822
    assert repr(duration_milliseconds(0.0078220000000000001)) == "7.822"
    assert duration_milliseconds(12.3456789) == 12345.679


def test_no_duration_looks_like_a_card_number() -> None:
    durations = [random.Random(seed).uniform(0, 60) for seed in range(20_000)]
    # Unrounded, float arithmetic writes long tails, some of which pass the Luhn check:
    # what made a log scan fail.
    assert any(find_card_numbers(repr(seconds * 1000)) for seconds in durations)
    assert not any(find_card_numbers(repr(duration_milliseconds(s))) for s in durations)
