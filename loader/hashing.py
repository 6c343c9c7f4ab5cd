"""Keyed card hashing: HMAC-SHA256 of the card's digits with a secret key.

A plain hash of a 16-digit card number can be reversed by enumerating numbers; a keyed
hash cannot without the key. The keys come from a key ring (`loader.keyring`): Secrets
Manager in AWS (`CAFE_CARD_KEY_SECRET_ARN`; a warm Lambda container keeps what it read for
`SECRET_CACHE_SECONDS`, and re-reads sooner when the warehouse shows a newer version,
`refresh_card_keys`) or the local key file (`CAFE_CARD_KEY_FILE`, mode 0600). Each hash is
stored with the key's version so that a rotated key can be told apart; during a rotation's
overlap window the previous key hashes each card too, and the two hashes are linked
(`CardKeys.linking_key`).

A lost key must never be replaced silently: a new key under the same version would hash
every card differently, and one card holder would become several customers. So reading
never creates a key file (`read_key_file` refuses a missing one); `create_key_file` is
called only by the command line, after it checked that the warehouse holds no card hash
and no key fingerprint yet. And every key version has a fingerprint (`key_fingerprint`, a
keyed hash of a fixed label, never the key) that the writers record in `raw.card_keys` on
first use and compare on every load: a different key under a known version refuses the load.

The Secrets Manager secret holds either the hex key itself, or JSON
`{"key": "<hex>", "version": "<label>"}` (and, after a rotation, the previous version's
label and the overlap end); without a version the configured `CAFE_CARD_KEY_VERSION` is used.

An erasure keeps a fingerprint of the forgotten card (`erasure_fingerprint`) that is
neither its hash nor reversible in practice: scrypt, memory-hard, with a random salt of
its own, so only someone who holds the card number can tell that a record is about it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loader.aws import aws_client
from loader.errors import CardKeyMismatch, ConfigurationError
from loader.keyring import KeyRing, read_ring_file, ring_from_secret, secret_key
from loader.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

KEY_BYTES = 32
FINGERPRINT_LABEL = b"cafe-elt card key fingerprint"
# A warm Lambda container re-reads the card key secret at least this often.
SECRET_CACHE_SECONDS: Final = 300.0
# scrypt's cost for erasure fingerprints: 16 MiB and about 50 ms per fingerprint, so that
# trying every card number of one issuer's range takes years of a computer's time.
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_SCRYPT_MEMORY: Final = 64 << 20


# HMAC's inner and outer pads (RFC 2104), as translation tables of bytes.
_INNER_PAD: Final = bytes(value ^ 0x36 for value in range(256))
_OUTER_PAD: Final = bytes(value ^ 0x5C for value in range(256))
_SHA256_BLOCK_BYTES: Final = 64
_HEX_CHARS: Final = 64


def _hmac_states(secret: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states that have absorbed the key's inner and outer pads: what `hmac` computes
    anew for every message."""
    if len(secret) > _SHA256_BLOCK_BYTES:
        secret = hashlib.sha256(secret).digest()
    padded = secret.ljust(_SHA256_BLOCK_BYTES, b"\0")
    inner = hashlib.sha256(padded.translate(_INNER_PAD))
    return inner, hashlib.sha256(padded.translate(_OUTER_PAD))


@dataclass(frozen=True)
class CardKey:
    secret: bytes = field(repr=False)
    version: str
    # HMAC's padded key states (see `hash_card`), made once with the key and gone with it.
    hmac_states: tuple[hashlib._Hash, hashlib._Hash] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ConfigurationError("the card hashing key is shorter than 16 bytes")
        object.__setattr__(self, "hmac_states", _hmac_states(self.secret))


def key_fingerprint(key: CardKey) -> str:
    """Hex HMAC-SHA256 of a fixed label under the key: tells keys apart, reveals nothing."""
    return hmac.new(key.secret, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()


def hash_card(key: CardKey, digits: str) -> str:
    """Hex HMAC-SHA256 of normalised card digits.

    The same digest as `hmac.new(key.secret, digits, sha256).hexdigest()` (a test holds
    them equal), from copies of the key's padded states: a copy costs less than `hmac`'s
    key set-up for every card, and a file may hold a million cards.
    """
    inner, outer = key.hmac_states
    inner = inner.copy()
    inner.update(digits.encode("ascii"))
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.hexdigest()


class CardHasher:
    """Hashes card digits for one file, each distinct card once while memory allows.

    The hashes already made are kept until `CACHED_CARDS` of them are (then the cache
    starts again), so memory stays flat whatever the file's size: a card coming back after
    that is hashed again, to the same hash.
    """

    CACHED_CARDS: Final = 1 << 17

    def __init__(self, key: CardKey) -> None:
        self.key = key
        self._hashes: dict[str, str] = {}

    def __call__(self, digits: str) -> str:
        hashed = self._hashes.get(digits)
        if hashed is None:
            self._make_room()
            hashed = self._hashes[digits] = hash_card(self.key, digits)
        return hashed

    def hashes(self, digits: pa.Array) -> pa.Array:
        """The hash of each value of a string array (null stays null), each distinct value
        hashed (or looked up) once."""
        encoded = pc.dictionary_encode(digits)
        distinct = encoded.dictionary.to_pylist()
        self._make_room(len(distinct))
        known, key = self._hashes, self.key
        hashed: list[str] = []
        for value in distinct:
            found = known.get(value)
            if found is None:
                found = known[value] = hash_card(key, value)
            hashed.append(found)
        # Every hash is 64 ASCII characters: the array is built from their concatenation.
        offsets = np.arange(0, _HEX_CHARS * len(distinct) + 1, _HEX_CHARS, dtype=np.int32)
        text = pa.py_buffer("".join(hashed).encode("ascii"))
        array = pa.StringArray.from_buffers(len(distinct), pa.py_buffer(offsets), text)
        return pc.take(array, encoded.indices)

    def _make_room(self, count: int = 1) -> None:
        if len(self._hashes) + count > self.CACHED_CARDS:
            self._hashes.clear()


class CardKeySuperseded(ConfigurationError):
    """The key ring in use is older than the warehouse's record of its versions."""

    def __init__(self, version: str, what: str) -> None:
        super().__init__(
            f"the card-hash key version {version!r} was {what} in this warehouse, but the key"
            " ring in use still holds it as it was before: nothing was loaded. Use the"
            " current key ring (the key file `cafe rotate-key` wrote, or the secret's"
            " AWSCURRENT version)"
        )


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A version's row of `raw.card_keys` (times as the warehouse returned them)."""

    fingerprint: str
    recorded_at: object = None
    overlap_ends_at: object = None
    retired_at: object = None


def _day(moment: object) -> str | None:
    return None if moment is None else str(moment)[:10]


def check_key_record(
    version: str, fingerprint: str, record: KeyRecord | None, *, current: bool
) -> None:
    """Refuse a key the warehouse does not know as it is used.

    Its fingerprint must be the one recorded for its version (`CardKeyMismatch`); a
    retired version is never used again, and a current key must not be one a rotation
    moved away from (`CardKeySuperseded`: the key ring in use is out of date).
    """
    if record is None or record.fingerprint != fingerprint:
        raise CardKeyMismatch(version, _day(record.recorded_at) if record else None)
    if record.retired_at is not None:
        raise CardKeySuperseded(version, f"retired on {_day(record.retired_at)}")
    if current and record.overlap_ends_at is not None:
        raise CardKeySuperseded(version, "rotated away from (`cafe rotate-key`)")


def create_key_file(path: Path) -> bool:
    """Create a new random key at `path` (mode 0600); False when a key file is already there.

    The file holds the bare hex key: a ring of one version (`loader.keyring`). Only for a
    warehouse that holds no card hash and no fingerprint yet (see the module docstring):
    the caller checks that.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as error:
        raise ConfigurationError(f"cannot create the card key file {path}: {error}") from error
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(KEY_BYTES) + "\n")
    return True


def new_key_secret() -> bytes:
    """Fresh random key material for a new key version."""
    return secrets.token_bytes(KEY_BYTES)


@dataclass(frozen=True)
class CardKeys:
    """The keys of one key ring as `CardKey`s: the current one, and the previous one (held
    until retired) with the end of its overlap window."""

    current: CardKey
    previous: CardKey | None = None
    overlap_ends_at: datetime | None = None

    @classmethod
    def of(cls, ring: KeyRing) -> CardKeys:
        previous = None
        if ring.previous is not None:
            previous = CardKey(ring.secrets[ring.previous], ring.previous)
        return cls(
            CardKey(ring.secrets[ring.current], ring.current), previous, ring.overlap_ends_at
        )

    def linking_key(self, now: datetime | None = None) -> CardKey | None:
        """The previous key while its overlap window is open: cards are hashed with it too."""
        if self.previous is None or self.overlap_ends_at is None:
            return None
        return self.previous if (now or datetime.now(UTC)) < self.overlap_ends_at else None

    @property
    def held(self) -> tuple[CardKey, ...]:
        """Every key still held, current first: what an erasure hashes a card with."""
        return (self.current,) if self.previous is None else (self.current, self.previous)


def read_key_file(path: Path, version: str) -> CardKey:
    """The current key of the ring in `path` (a bare key is `version`); a missing file is an
    error, never a new key."""
    return CardKeys.of(read_ring_file(path, version)).current


def key_from_secret_string(secret_string: str, default_version: str) -> CardKey:
    """The key held in a Secrets Manager SecretString (hex, or JSON with key and version)."""
    version, secret = secret_key(secret_string, default_version)
    return CardKey(secret, version)


_secret_cache: dict[tuple[str, str, str | None, str], tuple[float, CardKeys]] = {}
_secret_lock = threading.Lock()


def _read_secret_ring(settings: Settings) -> CardKeys:
    client: SecretsManagerClient = aws_client(settings, "secretsmanager")
    arn = str(settings.card_key_secret_arn)
    current = client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
    try:
        previous: str | None = client.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")[
            "SecretString"
        ]
    except client.exceptions.ResourceNotFoundException:
        previous = None  # never rotated, or the previous key was retired
    return CardKeys.of(ring_from_secret(current, previous, settings.card_key_version))


def _secret_keys(settings: Settings) -> CardKeys:
    # Cached per container: a warm Lambda does not call Secrets Manager for every file.
    cache_key = (
        str(settings.card_key_secret_arn),
        settings.card_key_version,
        settings.aws_endpoint_url,
        settings.aws_region,
    )
    with _secret_lock:
        cached = _secret_cache.get(cache_key)
        if cached is not None and time.monotonic() - cached[0] < SECRET_CACHE_SECONDS:
            return cached[1]
    keys = _read_secret_ring(settings)
    with _secret_lock:
        _secret_cache[cache_key] = (time.monotonic(), keys)
    return keys


def refresh_card_keys() -> None:
    """Forget the cached secret: the next `load_card_keys` reads Secrets Manager again."""
    with _secret_lock:
        _secret_cache.clear()


def load_card_keys(settings: Settings) -> CardKeys:
    """The key ring for this environment: Secrets Manager when an ARN is set, else the file."""
    if settings.card_key_secret_arn:
        return _secret_keys(settings)
    return CardKeys.of(read_ring_file(settings.card_key_file, settings.card_key_version))


def load_card_key(settings: Settings) -> CardKey:
    """The current key for this environment."""
    return load_card_keys(settings).current


# -- erasure fingerprints --------------------------------------------------------------------


def erasure_fingerprint(digits: str, *, salt: bytes | None = None) -> str:
    """`scrypt$<n>$<r>$<p>$<salt>$<digest>` (base64) of normalised card digits.

    Not the card's hash (no key, another function) and not reversible in practice (a
    random salt per record, memory-hard): it lets whoever holds the card number recognise
    an erasure record as theirs (`fingerprint_matches`), and nobody else.
    """
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        digits.encode("ascii"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=_SCRYPT_MEMORY,
        dklen=32,
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def _b64(data: bytes) -> str:
    # Base64, not hex: hex digits form long runs of decimal digits that a scan for card
    # numbers (or the masker) could take for one.
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint_matches(fingerprint: str, digits: str) -> bool:
    """Whether `fingerprint` (from `erasure_fingerprint`) was made from `digits`."""
    parts = fingerprint.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = (int(value) for value in parts[1:4])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
        digest = hashlib.scrypt(
            digits.encode("ascii"), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MEMORY, dklen=32
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(digest, expected)
