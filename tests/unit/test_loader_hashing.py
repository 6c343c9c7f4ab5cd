"""Keyed card hashing and key providers."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from loader.errors import CardKeyMismatch, ConfigurationError, MissingCardKey
from loader.hashing import (
    FINGERPRINT_LABEL,
    CardKey,
    CardKeySuperseded,
    KeyRecord,
    check_key_record,
    create_key_file,
    erasure_fingerprint,
    fingerprint_matches,
    hash_card,
    key_fingerprint,
    key_from_secret_string,
    read_key_file,
)


def test_hash_is_keyed_and_not_a_plain_digest() -> None:
    one, two = CardKey(b"a" * 32, "v1"), CardKey(b"b" * 32, "v1")
    digits = "4111111111111111"
    assert hash_card(one, digits) == hash_card(one, digits)
    assert hash_card(one, digits) != hash_card(two, digits)
    assert hash_card(one, digits) != hash_card(one, "4111111111111112")
    assert hash_card(one, digits) != hashlib.sha256(digits.encode()).hexdigest()
    assert len(hash_card(one, digits)) == 64


def test_reading_never_creates_a_key(tmp_path: Path) -> None:
    path = tmp_path / "state" / "card_hash.key"
    with pytest.raises(MissingCardKey, match="restore it from your backup"):
        read_key_file(path, "local-v1")
    assert not path.exists()


def test_a_created_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "state" / "card_hash.key"
    assert create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = read_key_file(path, "local-v1")
    assert not create_key_file(path)
    assert read_key_file(path, "local-v1") == first
    assert first.version == "local-v1" and len(first.secret) == 32


def test_the_fingerprint_tells_keys_apart_and_reveals_neither() -> None:
    one, two = CardKey(b"a" * 32, "v1"), CardKey(b"b" * 32, "v1")
    assert key_fingerprint(one) == key_fingerprint(CardKey(b"a" * 32, "other-version"))
    assert key_fingerprint(one) != key_fingerprint(two)
    assert len(key_fingerprint(one)) == 64
    # Keyed: not a plain digest of the key or of the label.
    assert key_fingerprint(one) not in {
        hashlib.sha256(b"a" * 32).hexdigest(),
        hashlib.sha256(FINGERPRINT_LABEL).hexdigest(),
    }
    assert (b"a" * 32).hex() not in key_fingerprint(one)


def test_secret_string_forms() -> None:
    hex_key = "ab" * 32
    assert key_from_secret_string(hex_key, "cfg").version == "cfg"
    from_json = key_from_secret_string(json.dumps({"key": hex_key, "version": "2024-01"}), "cfg")
    assert from_json.version == "2024-01" and from_json.secret == bytes.fromhex(hex_key)
    with pytest.raises(ConfigurationError):
        key_from_secret_string("not hex", "cfg")
    with pytest.raises(ConfigurationError):
        key_from_secret_string("abcd", "cfg")  # too short to be a key


def test_a_key_is_refused_unless_the_warehouse_knows_it_as_it_is_used() -> None:
    key = CardKey(b"a" * 32, "v1")
    fingerprint = key_fingerprint(key)
    check_key_record("v1", fingerprint, KeyRecord(fingerprint), current=True)
    with pytest.raises(CardKeyMismatch, match="cafe rotate-key"):
        check_key_record("v1", fingerprint, KeyRecord("0" * 64, "2024-01-02"), current=True)
    with pytest.raises(CardKeyMismatch):
        check_key_record("v1", fingerprint, None, current=True)
    rotated_away = KeyRecord(fingerprint, "2024-01-02", overlap_ends_at="2024-04-01")
    with pytest.raises(CardKeySuperseded, match="rotated away from"):
        check_key_record("v1", fingerprint, rotated_away, current=True)
    check_key_record("v1", fingerprint, rotated_away, current=False)  # the linking key
    retired = KeyRecord(fingerprint, "2024-01-02", retired_at="2024-02-03 10:00:00+00")
    with pytest.raises(CardKeySuperseded, match="retired on 2024-02-03"):
        check_key_record("v1", fingerprint, retired, current=False)


def test_an_erasure_fingerprint_is_neither_the_hash_nor_recognisable_without_the_card() -> None:
    digits = "4111111111111111"
    first, second = erasure_fingerprint(digits), erasure_fingerprint(digits)
    assert first != second  # a random salt per record: two records cannot be joined
    assert fingerprint_matches(first, digits) and fingerprint_matches(second, digits)
    assert not fingerprint_matches(first, "4111111111111112")
    assert not fingerprint_matches("scrypt$garbage", digits)
    key = CardKey(b"a" * 32, "v1")
    assert hash_card(key, digits) not in first
    assert digits not in first and hashlib.sha256(digits.encode()).hexdigest() not in first
    salt = bytes(16)
    assert erasure_fingerprint(digits, salt=salt) == erasure_fingerprint(digits, salt=salt)
