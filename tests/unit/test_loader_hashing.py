"""Keyed card hashing and key providers."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from loader.errors import ConfigurationError
from loader.hashing import CardKey, hash_card, key_from_secret_string, read_key_file


def test_hash_is_keyed_and_not_a_plain_digest() -> None:
    one, two = CardKey(b"a" * 32, "v1"), CardKey(b"b" * 32, "v1")
    digits = "4111111111111111"
    assert hash_card(one, digits) == hash_card(one, digits)
    assert hash_card(one, digits) != hash_card(two, digits)
    assert hash_card(one, digits) != hash_card(one, "4111111111111112")
    assert hash_card(one, digits) != hashlib.sha256(digits.encode()).hexdigest()
    assert len(hash_card(one, digits)) == 64


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "card_hash.key"
    first = read_key_file(path, "local-v1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path, "local-v1") == first
    assert first.version == "local-v1" and len(first.secret) == 32


def test_secret_string_forms() -> None:
    hex_key = "ab" * 32
    assert key_from_secret_string(hex_key, "cfg").version == "cfg"
    from_json = key_from_secret_string(json.dumps({"key": hex_key, "version": "2024-01"}), "cfg")
    assert from_json.version == "2024-01" and from_json.secret == bytes.fromhex(hex_key)
    with pytest.raises(ConfigurationError):
        key_from_secret_string("not hex", "cfg")
    with pytest.raises(ConfigurationError):
        key_from_secret_string("abcd", "cfg")  # too short to be a key
