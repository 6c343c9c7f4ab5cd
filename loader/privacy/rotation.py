"""`cafe rotate-key` and `cafe retire-key VERSION`: card-key versions with an overlap window.

Rotating makes a new key version current where the key ring lives (`KeyFile` locally,
`SecretsManagerRing` in AWS) and records it in the warehouse: the new version's
fingerprint, the previous version's `overlap_ends_at` (default 90 days on), an audit
record. Until then the loader hashes every card with both keys and links the two hashes
(`raw.card_links`), so customers who come back within the window stay the same customer.

Retiring ends the window early or tidies up after it: the previous key is destroyed where
the ring lives, `raw.card_keys.retired_at` is set, an audit record written. A retired
version is never used again (the loader refuses it, `CardKeySuperseded`). Its hashes stay
in the warehouse, and so do the links made with it: history keeps its customers; a card
seen first after the retirement is a new customer.

Order and recovery: the ring changes first, then the warehouse record. When the record
fails (the warehouse unreachable), the ring is already rotated and the loader refuses
nothing (it records a version it has not seen on first use); running the same command again
finds the ring ahead of the warehouse and records what is missing, instead of rotating or
retiring a second time.

Where a ring lives, and what destroying a key means there:

* `KeyFile`: the ring is rewritten without the key (`loader.keyring.write_ring_file`: a new
  private file renamed over the old one, no other copy left);
* `SecretsManagerRing`: Secrets Manager versions cannot be deleted one by one. Rotating
  puts a new version as AWSCURRENT (Secrets Manager moves AWSPREVIOUS to the old one);
  retiring takes the AWSPREVIOUS label away. A version without labels is *deprecated*: no
  stage reaches it, the loader (which reads by stage) never sees it again, but it stays
  readable by its version id until Secrets Manager removes deprecated versions, which it
  does only once the secret has more than 100 versions, and never within 24 hours of their
  creation (Secrets Manager quotas page). See docs/privacy.md for the IAM condition that
  keeps even that from the loader's role.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from loader.aws import aws_client
from loader.errors import CafeError, ConfigurationError, MissingCardKey
from loader.hashing import (
    CardKeys,
    KeyRecord,
    check_key_record,
    key_fingerprint,
    new_key_secret,
    refresh_card_keys,
)
from loader.keyring import (
    KeyRing,
    create_ring_file,
    current_secret_string,
    next_version,
    read_ring_file,
    ring_from_secret,
    secret_key,
    write_ring_file,
)
from loader.privacy.audit import Action, AuditRecord
from loader.privacy.store import SqlStore, Statement, lock_tables
from loader.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

DEFAULT_OVERLAP_DAYS: Final = 90


class KeyRingHolder(Protocol):
    """Where a key ring lives."""

    @property
    def description(self) -> str: ...

    def read(self) -> KeyRing: ...

    def write_rotated(self, ring: KeyRing) -> None:
        """Store `ring`, whose current key is new and whose previous key was current."""

    def write_retired(self, ring: KeyRing, version: str) -> None:
        """Store `ring`, which no longer holds the previous key `version`."""


@dataclass(frozen=True)
class KeyFile:
    path: Path
    default_version: str

    @property
    def description(self) -> str:
        return f"key file {self.path}"

    def read(self) -> KeyRing:
        return read_ring_file(self.path, self.default_version)

    def write_rotated(self, ring: KeyRing) -> None:
        write_ring_file(self.path, ring)

    def write_retired(self, ring: KeyRing, version: str) -> None:
        write_ring_file(self.path, ring)


@dataclass(frozen=True)
class SecretsManagerRing:
    client: Any  # SecretsManagerClient
    secret_id: str
    default_version: str

    @property
    def description(self) -> str:
        return "Secrets Manager secret (AWSCURRENT, AWSPREVIOUS)"

    def _staged(self, stage: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.client.get_secret_value(
                SecretId=self.secret_id, VersionStage=stage
            )
        except self.client.exceptions.ResourceNotFoundException:
            return None
        return found

    def read(self) -> KeyRing:
        current = self._staged("AWSCURRENT")
        if current is None:
            raise ConfigurationError("the card key secret has no AWSCURRENT version")
        previous = self._staged("AWSPREVIOUS")
        return ring_from_secret(
            current["SecretString"],
            None if previous is None else previous["SecretString"],
            self.default_version,
        )

    def write_rotated(self, ring: KeyRing) -> None:
        # AWSCURRENT moves to the new version; Secrets Manager moves AWSPREVIOUS to the
        # version it leaves, which holds the previous key.
        self.client.put_secret_value(
            SecretId=self.secret_id,
            SecretString=current_secret_string(ring),
            VersionStages=["AWSCURRENT"],
        )

    def write_retired(self, ring: KeyRing, version: str) -> None:
        previous = self._staged("AWSPREVIOUS")
        if previous is None:
            return  # already without the label
        if secret_key(previous["SecretString"], self.default_version)[0] != version:
            raise ConfigurationError(
                f"the secret's AWSPREVIOUS version does not hold the key version {version!r}"
            )
        self.client.update_secret_version_stage(
            SecretId=self.secret_id,
            VersionStage="AWSPREVIOUS",
            RemoveFromVersionId=previous["VersionId"],
        )


def ring_holder(settings: Settings) -> KeyRingHolder:
    """Where this environment's key ring lives."""
    if settings.card_key_secret_arn:
        client: SecretsManagerClient = aws_client(settings, "secretsmanager")
        return SecretsManagerRing(client, settings.card_key_secret_arn, settings.card_key_version)
    return KeyFile(settings.card_key_file, settings.card_key_version)


def recorded_keys(store: SqlStore) -> dict[str, KeyRecord]:
    """`raw.card_keys` by version."""
    rows = store.query(
        Statement(
            "select key_version, fingerprint, recorded_at, overlap_ends_at, retired_at"
            ' from "raw".card_keys'
        )
    )
    return {str(row[0]): KeyRecord(str(row[1]), *row[2:]) for row in rows}


@dataclass(frozen=True)
class Rotation:
    version: str
    previous_version: str
    overlap_ends_at: datetime
    audit_id: str
    resumed: bool = False


@dataclass(frozen=True)
class Retirement:
    version: str
    audit_id: str | None
    resumed: bool = False
    already_retired_on: str | None = None


def _record_if_new(version: str, fingerprint: str, now: datetime) -> Statement:
    return Statement(
        'insert into "raw".card_keys (key_version, fingerprint, recorded_at)'
        " select cast(%(version)s as varchar(64)), cast(%(fingerprint)s as char(64)),"
        ' cast(%(now)s as timestamptz) from "raw".card_keys where key_version = %(version)s'
        " having count(*) = 0",
        {"version": version, "fingerprint": fingerprint, "now": now},
    )


def rotation_statements(store: SqlStore, ring: KeyRing, record: AuditRecord) -> list[Statement]:
    """The warehouse's record of a rotation to `ring.current` (idempotent)."""
    keys = CardKeys.of(ring)
    assert keys.previous is not None and ring.overlap_ends_at is not None
    return [
        lock_tables(store.dialect, ("card_keys",)),
        _record_if_new(keys.current.version, key_fingerprint(keys.current), record.performed_at),
        _record_if_new(keys.previous.version, key_fingerprint(keys.previous), record.performed_at),
        Statement(
            'update "raw".card_keys set overlap_ends_at = %(overlap_ends_at)s'
            " where key_version = %(version)s and retired_at is null",
            {"overlap_ends_at": ring.overlap_ends_at, "version": keys.previous.version},
        ),
        record.insert(),
    ]


def _retire(version: str, now: datetime) -> Statement:
    return Statement(
        'update "raw".card_keys set retired_at = %(now)s, overlap_ends_at = case'
        " when overlap_ends_at is null or overlap_ends_at > %(now)s then %(now)s"
        " else overlap_ends_at end where key_version = %(version)s and retired_at is null",
        {"now": now, "version": version},
    )


def retirement_statements(store: SqlStore, version: str, record: AuditRecord) -> list[Statement]:
    """The warehouse's record of a retirement (its window, if still open, ends now)."""
    return [
        lock_tables(store.dialect, ("card_keys",)),
        _retire(version, record.performed_at),
        record.insert(),
    ]


def _check_ring_against(ring: KeyRing, records: dict[str, KeyRecord]) -> None:
    """Refuse to rotate from, or retire, keys the warehouse does not know as they are."""
    keys = CardKeys.of(ring)
    for key in keys.held:
        record = records.get(key.version)
        if record is not None:
            check_key_record(key.version, key_fingerprint(key), record, current=key is keys.current)


def rotate_key(
    store: SqlStore,
    holder: KeyRingHolder,
    *,
    overlap_days: int = DEFAULT_OVERLAP_DAYS,
    lost_key: bool = False,
    now: datetime | None = None,
    performed_by: str | None = None,
) -> Rotation | StartOver:
    """Make a new key version current, the old one kept for `overlap_days`.

    `lost_key`: the key file is gone and no backup exists; start a new version alone
    (`start_over`).
    """
    if overlap_days < 0:
        raise ConfigurationError("the overlap window is 0 days or more")
    clock = now or datetime.now(UTC)
    extra = {"performed_by": performed_by} if performed_by else {}
    try:
        ring = holder.read()
    except MissingCardKey as missing:
        if lost_key and isinstance(holder, KeyFile):
            return start_over(store, holder, now=clock, performed_by=performed_by)
        raise MissingCardKey(
            f"{missing} If it is lost for good, `cafe rotate-key --lost-key` starts a new key"
            " version without it (customers seen before then count as new)"
        ) from None
    if lost_key:
        raise ConfigurationError(
            f"the card key ring is there ({holder.description}): rotate without --lost-key"
        )
    records = recorded_keys(store)
    if ring.previous is not None:
        previous_record = records.get(ring.previous)
        if (
            ring.current in records
            and previous_record is not None
            and previous_record.overlap_ends_at is not None
        ):
            raise ConfigurationError(
                f"the key version {ring.previous!r} is still held beside the current one:"
                f" retire it first with `cafe retire-key {ring.previous}`"
            )
        # The ring was rotated but the warehouse never heard of it: record that rotation.
        assert ring.overlap_ends_at is not None
        record = AuditRecord(
            Action.ROTATE_KEY,
            key_version=ring.current,
            details=_rotation_details(ring, holder) + "; recorded after an interrupted rotation",
            performed_at=clock,
            **extra,
        )
        store.execute(rotation_statements(store, ring, record))
        return Rotation(ring.current, ring.previous, ring.overlap_ends_at, record.audit_id, True)
    _check_ring_against(ring, records)
    version = next_version(ring.current)
    while version in records:
        version = next_version(version)
    rotated = ring.rotated(version, new_key_secret(), clock + timedelta(days=overlap_days))
    assert rotated.overlap_ends_at is not None and rotated.previous is not None
    holder.write_rotated(rotated)
    refresh_card_keys()
    record = AuditRecord(
        Action.ROTATE_KEY,
        key_version=version,
        details=_rotation_details(rotated, holder),
        performed_at=clock,
        **extra,
    )
    try:
        store.execute(rotation_statements(store, rotated, record))
    except Exception as error:
        raise CafeError(
            f"the key ring was rotated to {version!r} ({holder.description}), but recording"
            f" it in the warehouse failed ({type(error).__name__}); run `cafe rotate-key`"
            " again to record it"
        ) from error
    return Rotation(version, rotated.previous, rotated.overlap_ends_at, record.audit_id)


@dataclass(frozen=True)
class StartOver:
    version: str
    lost_versions: tuple[str, ...]
    audit_id: str


def start_over(
    store: SqlStore, holder: KeyFile, *, now: datetime, performed_by: str | None = None
) -> StartOver:
    """A new key ring after the key file was lost: a new version alone, no window.

    The versions the warehouse recorded and whose keys are gone are marked retired, so
    that a key file found again later cannot hash beside the new one unnoticed; their
    hashes stay, and the customers they identify count as new when they come back.
    """
    records = recorded_keys(store)
    lost = tuple(
        sorted(version for version, record in records.items() if record.retired_at is None)
    )
    version = next_version(max(records, default=holder.default_version, key=_label_order))
    while version in records:
        version = next_version(version)
    ring = KeyRing({version: new_key_secret()}, current=version)
    if not create_ring_file(holder.path, ring):
        raise ConfigurationError(f"the key file {holder.path} exists: rotate without --lost-key")
    key = CardKeys.of(ring).current
    extra = {"performed_by": performed_by} if performed_by else {}
    record = AuditRecord(
        Action.ROTATE_KEY,
        key_version=version,
        details=f"key file lost: {version} started alone in the {holder.description};"
        f" retired without their key: {', '.join(lost) or 'none'}",
        performed_at=now,
        **extra,
    )
    statements = [
        lock_tables(store.dialect, ("card_keys",)),
        _record_if_new(version, key_fingerprint(key), now),
        *(_retire(lost_version, now) for lost_version in lost),
        record.insert(),
    ]
    store.execute(statements)
    return StartOver(version, lost, record.audit_id)


def _label_order(label: str) -> tuple[int, str]:
    digits = "".join(character for character in label if character.isdigit())
    return (int(digits) if digits else 0, label)


def _rotation_details(ring: KeyRing, holder: KeyRingHolder) -> str:
    assert ring.overlap_ends_at is not None
    return (
        f"{ring.current} current in the {holder.description}; {ring.previous} hashes cards"
        f" beside it until {ring.overlap_ends_at:%Y-%m-%d %H:%M} UTC"
    )


def retire_key(
    store: SqlStore,
    holder: KeyRingHolder,
    version: str,
    *,
    now: datetime | None = None,
    performed_by: str | None = None,
) -> Retirement:
    """Destroy the previous key `version` and end its window."""
    clock = now or datetime.now(UTC)
    ring = holder.read()
    records = recorded_keys(store)
    record_of_version = records.get(version)
    extra = {"performed_by": performed_by} if performed_by else {}
    if ring.previous == version:
        _check_ring_against(ring, records)
        retired = ring.retired(version)
        holder.write_retired(retired, version)
        refresh_card_keys()
        resumed = False
    elif version == ring.current:
        ring.retired(version)  # raises: rotate first
        raise AssertionError("unreachable")
    elif record_of_version is not None and record_of_version.retired_at is not None:
        return Retirement(version, None, already_retired_on=str(record_of_version.retired_at)[:10])
    elif record_of_version is not None:
        resumed = True  # the ring no longer holds it: record the retirement that was cut short
    else:
        raise ConfigurationError(f"no card key version {version!r} is held or recorded")
    record = AuditRecord(
        Action.RETIRE_KEY,
        key_version=version,
        details=f"key {version} destroyed in the {holder.description}; its hashes and links"
        " stay" + ("; recorded after an interrupted retirement" if resumed else ""),
        performed_at=clock,
        **extra,
    )
    try:
        store.execute(retirement_statements(store, version, record))
    except Exception as error:
        raise CafeError(
            f"the key {version!r} was destroyed ({holder.description}), but recording it in"
            f" the warehouse failed ({type(error).__name__}); run `cafe retire-key {version}`"
            " again to record it"
        ) from error
    return Retirement(version, record.audit_id, resumed)
