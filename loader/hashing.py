"""Keyed card hashing: HMAC-SHA256 of the card's digits with a secret key.

A plain hash of a 16-digit card number can be reversed by enumerating numbers; a keyed
hash cannot without the key. The key comes from Secrets Manager in AWS
(`CAFE_CARD_KEY_SECRET_ARN`, fetched once per Lambda container) or from the local key file
(`CAFE_CARD_KEY_FILE`, hex, mode 0600). Each hash is stored with the key's version so that a
rotated key can be told apart.

A lost key must never be replaced silently: a new key under the same version would hash
every card differently, and one card holder would become several customers. So reading
never creates a key file (`read_key_file` refuses a missing one); `create_key_file` is
called only by the command line, after it checked that the warehouse holds no card hash
and no key fingerprint yet. And every key version has a fingerprint (`key_fingerprint`, a
keyed hash of a fixed label, never the key) that the writers record in `raw.card_keys` on
first use and compare on every load: a different key under a known version refuses the load.

The Secrets Manager secret holds either the hex key itself, or JSON
`{"key": "<hex>", "version": "<label>"}`; without a version the configured
`CAFE_CARD_KEY_VERSION` is used.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loader.errors import ConfigurationError, MissingCardKey
from loader.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

KEY_BYTES = 32
FINGERPRINT_LABEL = b"cafe-elt card key fingerprint"


@dataclass(frozen=True)
class CardKey:
    secret: bytes = field(repr=False)
    version: str

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ConfigurationError("the card hashing key is shorter than 16 bytes")


def key_fingerprint(key: CardKey) -> str:
    """Hex HMAC-SHA256 of a fixed label under the key: tells keys apart, reveals nothing."""
    return hmac.new(key.secret, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()


def hash_card(key: CardKey, digits: str) -> str:
    """Hex HMAC-SHA256 of normalised card digits."""
    return hmac.new(key.secret, digits.encode("ascii"), hashlib.sha256).hexdigest()


class CardHasher:
    """Hashes card digits for one file, each distinct card once."""

    def __init__(self, key: CardKey) -> None:
        self.key = key
        self._hashes: dict[str, str] = {}

    def __call__(self, digits: str) -> str:
        hashed = self._hashes.get(digits)
        if hashed is None:
            hashed = self._hashes[digits] = hash_card(self.key, digits)
        return hashed


def _parse_hex_key(text: str, where: str) -> bytes:
    try:
        return bytes.fromhex(text.strip())
    except ValueError:
        raise ConfigurationError(f"the card hashing key in {where} is not hex") from None


def create_key_file(path: Path) -> bool:
    """Create a new random key at `path` (mode 0600); False when a key file is already there.

    Only for a warehouse that holds no card hash and no fingerprint yet (see the module
    docstring): the caller checks that.
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


def read_key_file(path: Path, version: str) -> CardKey:
    """The key in `path` under `version`; a missing file is an error, never a new key."""
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
    return CardKey(_parse_hex_key(text, str(path)), version)


def key_from_secret_string(secret_string: str, default_version: str) -> CardKey:
    """The key held in a Secrets Manager SecretString (hex, or JSON with key and version)."""
    text = secret_string.strip()
    if text.startswith("{"):
        try:
            document: Any = json.loads(text)
            key_hex, version = str(document["key"]), str(document.get("version", default_version))
        except (ValueError, KeyError, TypeError):
            raise ConfigurationError('the card key secret is not JSON with a "key" field') from None
        return CardKey(_parse_hex_key(key_hex, "the card key secret"), version)
    return CardKey(_parse_hex_key(text, "the card key secret"), default_version)


@functools.lru_cache(maxsize=4)
def _secret_key(arn: str, default_version: str, region: str) -> CardKey:
    # Cached per container: a warm Lambda does not call Secrets Manager for every file.
    import boto3

    client: SecretsManagerClient = boto3.client("secretsmanager", region_name=region)
    return key_from_secret_string(
        client.get_secret_value(SecretId=arn)["SecretString"], default_version
    )


def load_card_key(settings: Settings) -> CardKey:
    """The key for this environment: Secrets Manager when an ARN is set, else the key file."""
    if settings.card_key_secret_arn:
        return _secret_key(
            settings.card_key_secret_arn, settings.card_key_version, settings.aws_region
        )
    return read_key_file(settings.card_key_file, settings.card_key_version)
