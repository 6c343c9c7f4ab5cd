"""Keyed card hashing and key providers."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from loader.errors import ConfigurationError, MissingCardKey
from loader.hashing import (
    FINGERPRINT_LABEL,
    CardKey,
    create_key_file,
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
