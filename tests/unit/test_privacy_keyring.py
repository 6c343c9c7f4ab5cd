"""The card key ring: its file forms, rotation and retirement rules, the Secrets Manager
documents, and what the loader hashes with during an overlap window."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loader.errors import ConfigurationError, MissingCardKey
from loader.hashing import CardKey, CardKeys, read_key_file
from loader.keyring import (
    KeyRing,
    current_secret_string,
    next_version,
    read_ring_file,
    ring_from_secret,
    ring_from_text,
    ring_to_text,
    write_ring_file,
)

OLD = b"o" * 32
NEW = b"n" * 32
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_a_bare_hex_key_file_is_a_ring_of_one_version_and_hashes_as_before(
    tmp_path: Path,
) -> None:
    path = tmp_path / "card_hash.key"
    path.write_text(OLD.hex() + "\n")
    ring = read_ring_file(path, "local-v1")
    assert (ring.current, ring.previous) == ("local-v1", None)
    assert dict(ring.secrets) == {"local-v1": OLD}
    # The same key under the same version: every hash made before the ring existed holds.
    assert read_key_file(path, "local-v1") == CardKey(OLD, "local-v1")
    assert path.read_text() == OLD.hex() + "\n"  # reading never rewrites the file


def test_rotation_keeps_the_old_key_for_the_window_and_the_file_round_trips(
    tmp_path: Path,
) -> None:
    path = tmp_path / "card_hash.key"
    path.write_text(OLD.hex() + "\n")
    path.chmod(0o600)
    rotated = read_ring_file(path, "local-v1").rotated("local-v2", NEW, NOW + timedelta(days=90))
    write_ring_file(path, rotated)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card_hash.key"]  # no temporary left
    again = read_ring_file(path, "ignored-for-a-ring")
    assert again == rotated
    assert (again.current, again.previous) == ("local-v2", "local-v1")
    keys = CardKeys.of(again)
    assert keys.linking_key(NOW) == keys.previous
    assert keys.linking_key(NOW + timedelta(days=90)) is None  # the window has closed
    assert [key.version for key in keys.held] == ["local-v2", "local-v1"]


def test_retiring_drops_the_old_key_from_the_ring_text(tmp_path: Path) -> None:
    ring = KeyRing({"local-v1": OLD}, current="local-v1").rotated("local-v2", NEW, NOW)
    retired = ring.retired("local-v1")
    text = ring_to_text(retired)
    assert OLD.hex() not in text and NEW.hex() in text
    assert ring_from_text(text, default_version="x", where="test") == retired
    assert CardKeys.of(retired).linking_key(NOW - timedelta(days=1)) is None


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda ring: ring.rotated("local-v3", b"t" * 32, NOW), "retire it first"),
        (lambda ring: ring.retired("local-v2"), "rotate to a new version first"),
        (lambda ring: ring.retired("local-v0"), "holds no previous version"),
    ],
)
def test_a_ring_never_holds_three_keys_nor_retires_its_current_one(
    action: object, message: str
) -> None:
    ring = KeyRing({"local-v1": OLD}, current="local-v1").rotated("local-v2", NEW, NOW)
    with pytest.raises(ConfigurationError, match=message):
        action(ring)  # type: ignore[operator]


def test_malformed_rings_are_configuration_errors(tmp_path: Path) -> None:
    for text in ('{"format": "other", "keys": {}}', "{not json", "zz"):
        with pytest.raises(ConfigurationError):
            ring_from_text(text, default_version="v1", where="the file")
    with pytest.raises(ConfigurationError, match="shorter than 16 bytes"):
        KeyRing({"v1": b"short"}, current="v1")
    with pytest.raises(MissingCardKey, match="restore it from your backup"):
        read_ring_file(tmp_path / "missing.key", "v1")


def test_version_labels_count_up() -> None:
    assert next_version("local-v1") == "local-v2"
    assert next_version("aws-v9") == "aws-v10"
    assert next_version("2024") == "2025"
    assert next_version("original") == "original-v2"


def test_the_secret_documents_name_the_previous_version_and_window() -> None:
    ring = KeyRing({"aws-v1": OLD}, current="aws-v1").rotated("aws-v2", NEW, NOW)
    current = current_secret_string(ring)
    assert OLD.hex() not in current  # the previous key stays in its own version
    previous = json.dumps({"key": OLD.hex(), "version": "aws-v1"})
    assert ring_from_secret(current, previous, "cfg") == ring
    # After retirement AWSPREVIOUS is gone: the ring holds the current key only.
    alone = ring_from_secret(current, None, "cfg")
    assert (alone.current, alone.previous) == ("aws-v2", None)
    # A version labelled AWSPREVIOUS that the current one does not name is not in the ring.
    stranger = json.dumps({"key": (b"s" * 32).hex(), "version": "someone-else"})
    assert ring_from_secret(current, stranger, "cfg").previous is None
    # The secret CloudFormation creates: a key and a version, nothing else.
    created = json.dumps({"key": OLD.hex(), "version": "aws-v1"})
    assert ring_from_secret(created, None, "cfg") == KeyRing({"aws-v1": OLD}, current="aws-v1")
