"""Card hashing from the key's precomputed HMAC states gives exactly `hmac.new`'s digests,
and a file's hasher keeps its memory bounded while hashing each distinct card of a block
once."""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loader.hashing as hashing
from loader.hashing import CardHasher, CardKey, hash_card


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=16, max_size=200),
    st.text(alphabet="0123456789", min_size=0, max_size=40),
)
def test_hash_card_is_hmac_sha256_of_the_digits(secret: bytes, digits: str) -> None:
    key = CardKey(secret, "v1")
    expected = hmac.new(secret, digits.encode("ascii"), hashlib.sha256).hexdigest()
    assert hash_card(key, digits) == expected
    assert CardHasher(key)(digits) == expected


@pytest.mark.parametrize("secret_bytes", [16, 32, 63, 64, 65, 128])
def test_keys_of_every_length_around_the_block_size(secret_bytes: int) -> None:
    key = CardKey(bytes(range(secret_bytes)), "v1")
    digits = "4111111111111111"
    assert hash_card(key, digits) == hmac.new(key.secret, digits.encode(), "sha256").hexdigest()


def test_two_keys_never_share_states() -> None:
    one, two = CardKey(b"a" * 32, "v1"), CardKey(b"b" * 32, "v2")
    assert hash_card(one, "4111111111111111") != hash_card(two, "4111111111111111")
    assert hash_card(one, "4111111111111111") == hash_card(one, "4111111111111111")


def test_an_array_is_hashed_once_per_distinct_card(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = hashing.hash_card

    def counting(key: CardKey, digits: str) -> str:
        calls.append(digits)
        return original(key, digits)

    monkeypatch.setattr(hashing, "hash_card", counting)
    key = CardKey(b"k" * 32, "v1")
    hasher = CardHasher(key)
    digits = pa.array(["4111111111111111", None, "5500000000000004", "4111111111111111", None])
    hashed = hasher.hashes(digits).to_pylist()
    assert calls == ["4111111111111111", "5500000000000004"]
    assert hashed == [
        original(key, "4111111111111111"),
        None,
        original(key, "5500000000000004"),
        original(key, "4111111111111111"),
        None,
    ]
    assert hasher.hashes(pa.array(["5500000000000004"], pa.string())).to_pylist() == [hashed[2]]
    assert len(calls) == 2  # known from the earlier block
    assert hasher.hashes(pa.array([], pa.string())).to_pylist() == []


def test_the_cache_stays_bounded_and_hashes_stay_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CardHasher, "CACHED_CARDS", 10)
    key = CardKey(b"k" * 32, "v1")
    hasher = CardHasher(key)
    cards = [f"41111111111{index:05d}" for index in range(25)]
    for start in range(0, 25, 5):
        block = pa.array(cards[start : start + 5] + cards[:2])
        assert hasher.hashes(block).to_pylist() == [
            hash_card(key, card) for card in block.to_pylist()
        ]
        assert len(hasher._hashes) <= 10 + 7


def test_a_key_s_states_stay_out_of_its_text_and_equality() -> None:
    one, same = CardKey(b"k" * 32, "v1"), CardKey(b"k" * 32, "v1")
    assert one == same and hash(one) == hash(same)
    assert "kkkk" not in repr(one) and "states" not in repr(one)
    assert one != CardKey(b"k" * 32, "v2")
