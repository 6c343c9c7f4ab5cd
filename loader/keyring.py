"""The card-hash key ring: the key versions still held, which one is current, and until
when the one before it is still used beside it (the rotation's overlap window).

A ring holds at most two versions: the current one and, after `cafe rotate-key`, the
previous one until `cafe retire-key` destroys it. During the overlap the loader hashes each
card with both keys and records the link between the two hashes, so a returning customer
stays one customer across the rotation (`loader.hashing.CardKeys`). A third version would
need a second window on top of the first; rotating again first retires the previous key.

Where a ring lives:

* locally, in the key file (`CAFE_CARD_KEY_FILE`, default `.local/card_hash.key`, mode
  0600). A file holding a bare hex key (what `cafe up` creates, and what every checkout
  wrote before rotation existed) is a ring of that one key under `CAFE_CARD_KEY_VERSION`
  (`local-v1`): reading it changes nothing, so no hash changes either. The first rotation
  writes the ring as JSON (`ring_to_text`), atomically: a private temporary file in the
  same folder renamed over the old one, so no copy of a key is left beside it;
* in AWS, in the Secrets Manager secret: AWSCURRENT holds `{"key", "version"}` and, after a
  rotation, `"previous_version"` and `"overlap_ends_at"`; AWSPREVIOUS holds the previous
  `{"key", "version"}` until `cafe retire-key` takes the label away (`ring_from_secret`).

This module knows nothing of hashing: keys are bytes here, `loader.hashing` turns them into
`CardKey`s.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from loader.errors import ConfigurationError, MissingCardKey

RING_FORMAT: Final = "cafe-elt card key ring 1"
MIN_KEY_BYTES: Final = 16
_VERSION_NUMBER: Final = re.compile(r"^(?P<stem>.*?)(?P<number>\d+)$")
_VERSION_LABEL: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class KeyRing:
    """Key versions by label (`secrets`, never shown in a repr), the current one, and the
    previous one with the end of its overlap window (None: no window, or none recorded)."""

    secrets: Mapping[str, bytes] = field(repr=False)
    current: str
    previous: str | None = None
    overlap_ends_at: datetime | None = None

    def __post_init__(self) -> None:
        held = {self.current} | ({self.previous} if self.previous else set())
        if set(self.secrets) != held:
            raise ConfigurationError(
                "the card key ring must hold exactly its current and previous versions"
            )
        if self.previous == self.current:
            raise ConfigurationError("the card key ring's previous version is its current one")
        for version, secret in self.secrets.items():
            if not _VERSION_LABEL.match(version):
                raise ConfigurationError(
                    "a card key version label is 1-64 letters, digits, dots, dashes or underscores"
                )
            if len(secret) < MIN_KEY_BYTES:
                raise ConfigurationError(f"the card key {version!r} is shorter than 16 bytes")
        if self.overlap_ends_at is not None and self.overlap_ends_at.tzinfo is None:
            raise ConfigurationError("the overlap end of the card key ring has no time zone")

    def linking_version(self, now: datetime) -> str | None:
        """The previous version while its overlap window is open at `now`, else None."""
        if self.previous is None or self.overlap_ends_at is None:
            return None
        return self.previous if now < self.overlap_ends_at else None

    def rotated(self, version: str, secret: bytes, overlap_ends_at: datetime) -> KeyRing:
        """This ring with `version` current and the current key kept until `overlap_ends_at`."""
        if self.previous is not None:
            raise ConfigurationError(
                f"the key version {self.previous!r} is still held beside the current one:"
                f" retire it first with `cafe retire-key {self.previous}`"
            )
        if version == self.current:
            raise ConfigurationError(f"the key version {version!r} is already current")
        return KeyRing(
            {version: secret, self.current: self.secrets[self.current]},
            current=version,
            previous=self.current,
            overlap_ends_at=overlap_ends_at,
        )

    def retired(self, version: str) -> KeyRing:
        """This ring without the previous version `version` (its key destroyed)."""
        if version == self.current:
            raise ConfigurationError(
                f"{version!r} is the current card key: rotate to a new version first"
                " (`cafe rotate-key`), then retire this one"
            )
        if version != self.previous:
            raise ConfigurationError(f"the card key ring holds no previous version {version!r}")
        return KeyRing({self.current: self.secrets[self.current]}, current=self.current)


def next_version(label: str) -> str:
    """The label after `label`: its trailing number plus one (`local-v1` -> `local-v2`),
    or `-v2` appended when it has none."""
    match = _VERSION_NUMBER.match(label)
    if match is None:
        return f"{label}-v2"
    return f"{match['stem']}{int(match['number']) + 1}"


def _hex(text: object, where: str) -> bytes:
    try:
        return bytes.fromhex(str(text).strip())
    except ValueError:
        raise ConfigurationError(f"the card hashing key in {where} is not hex") from None


def _instant(text: object, where: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        raise ConfigurationError(f"the overlap end in {where} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ConfigurationError(f"the overlap end in {where} has no time zone")
    return moment


def ring_from_text(text: str, *, default_version: str, where: str) -> KeyRing:
    """The ring a key file holds: JSON (`ring_to_text`), or a bare hex key of one version."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return KeyRing({default_version: _hex(stripped, where)}, current=default_version)
    try:
        document: Any = json.loads(stripped)
        keys = document["keys"]
        if document.get("format") != RING_FORMAT or not isinstance(keys, dict):
            raise ValueError("not a key ring")
        return KeyRing(
            {str(version): _hex(secret, where) for version, secret in keys.items()},
            current=str(document["current"]),
            previous=None if document.get("previous") is None else str(document["previous"]),
            overlap_ends_at=_instant(document.get("overlap_ends_at"), where),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigurationError(f"{where} is not a card key ring") from None


def ring_to_text(ring: KeyRing) -> str:
    """The ring as the key file holds it (JSON, keys in hex)."""
    document = {
        "format": RING_FORMAT,
        "current": ring.current,
        "previous": ring.previous,
        "overlap_ends_at": ring.overlap_ends_at.isoformat() if ring.overlap_ends_at else None,
        "keys": {version: secret.hex() for version, secret in sorted(ring.secrets.items())},
    }
    return json.dumps(document, indent=2) + "\n"


def read_ring_file(path: Path, default_version: str) -> KeyRing:
    """The ring in `path`; a missing file is an error, never a new key."""
    try:
        text = path.read_text()
        for _ in range(50):  # another process may have created the file and not written yet
            if text.strip():
                break
            time.sleep(0.02)
            text = path.read_text()
    except FileNotFoundError:
        raise MissingCardKey(
            f"the card key file {path} is missing: restore it from your backup (the hashes"
            " in the warehouse were made with it), or, for a warehouse that holds no card"
            " hash yet, let `cafe up` create one"
        ) from None
    except OSError as error:
        raise ConfigurationError(f"cannot read the card key file {path}: {error}") from error
    return ring_from_text(text, default_version=default_version, where=str(path))


def write_ring_file(path: Path, ring: KeyRing) -> None:
    """Replace the key file with `ring`, atomically and privately (mode 0600).

    The new text goes to a temporary file in the same folder (created 0600), is flushed to
    disk and renamed over the old file: a crash leaves the old ring or the new one, and no
    third file holding a key. The old file's blocks are freed, not overwritten: a file
    system keeps no copy a program can open, but only full-disk encryption protects the
    freed blocks of a stolen disk.
    """
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(ring_to_text(ring))
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def create_ring_file(path: Path, ring: KeyRing) -> bool:
    """Write `ring` to a new key file (mode 0600); False when a key file is already there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as handle:
        handle.write(ring_to_text(ring))
    return True


# -- Secrets Manager -------------------------------------------------------------------------


def _secret_document(secret_string: str) -> dict[str, Any]:
    text = secret_string.strip()
    if not text.startswith("{"):
        return {"key": text}
    try:
        document: Any = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict) or "key" not in document:
        raise ConfigurationError('the card key secret is not JSON with a "key" field')
    return document


def secret_key(secret_string: str, default_version: str) -> tuple[str, bytes]:
    """The (version, key) a SecretString holds: hex, or JSON with a key and its version."""
    document = _secret_document(secret_string)
    version = str(document.get("version") or default_version)
    return version, _hex(document["key"], "the card key secret")


def ring_from_secret(
    current_string: str, previous_string: str | None, default_version: str
) -> KeyRing:
    """The ring held by AWSCURRENT's SecretString and, if labelled, AWSPREVIOUS's.

    AWSPREVIOUS counts only when it is the version AWSCURRENT names as its previous one: a
    version labelled by Secrets Manager alone (the one before a put that was no
    `cafe rotate-key`) is not part of the ring.
    """
    current_document = _secret_document(current_string)
    current, key = secret_key(current_string, default_version)
    named_previous = current_document.get("previous_version")
    secrets = {current: key}
    previous = None
    if previous_string is not None and named_previous:
        version, previous_key = secret_key(previous_string, default_version)
        if version == named_previous and version != current:
            secrets[version] = previous_key
            previous = version
    overlap = _instant(current_document.get("overlap_ends_at"), "the card key secret")
    return KeyRing(secrets, current=current, previous=previous, overlap_ends_at=overlap)


def current_secret_string(ring: KeyRing) -> str:
    """AWSCURRENT's SecretString for `ring`: its current key, and the previous version's
    label with the overlap end (the previous key itself stays in AWSPREVIOUS)."""
    document: dict[str, Any] = {"key": ring.secrets[ring.current].hex(), "version": ring.current}
    if ring.previous is not None:
        document["previous_version"] = ring.previous
        if ring.overlap_ends_at is not None:
            document["overlap_ends_at"] = ring.overlap_ends_at.isoformat()
    return json.dumps(document)
