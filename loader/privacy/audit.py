"""`raw.privacy_audit`: one record per privacy step (a key rotation or retirement, an
erasure, an access request, a retention run) with what it changed or found, in counts.

A record never holds a card number or a card hash. An erasure or an access request keeps
the card's `erasure_fingerprint` (scrypt with a random salt: only someone holding the card
number can recognise the record as theirs). The reason an operator types is stored with
card-like numbers masked.

Counts may be SQL expressions (`(select count(*) from erased_transactions)`), so that a
transaction writes exactly what it changed into its own record.
"""

from __future__ import annotations

import enum
import getpass
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from loader.cards import mask_card_numbers
from loader.privacy.store import SqlStore, Statement
from loader.schema import PRIVACY_AUDIT_COLUMNS

MAX_REASON_BYTES: Final = 1024
MAX_DETAILS_BYTES: Final = 4096
MAX_ACTOR_BYTES: Final = 256


# Each value is cast to its column's type: a literal in a select list has no type of its
# own on Redshift, and an unsized varchar there is varchar(256).
_COLUMN_TYPES: Final = {
    "audit_id": "varchar(36)",
    "action": "varchar(32)",
    "performed_at": "timestamptz",
    "performed_by": f"varchar({MAX_ACTOR_BYTES})",
    "reason": f"varchar({MAX_REASON_BYTES})",
    "key_version": "varchar(64)",
    "card_fingerprint": "varchar(256)",
    "details": f"varchar({MAX_DETAILS_BYTES})",
}


class Action(enum.StrEnum):
    ROTATE_KEY = "rotate-key"
    RETIRE_KEY = "retire-key"
    FORGET = "forget"
    SUBJECT_ACCESS = "subject-access"
    RETENTION = "retention"


def _bounded(text: str, limit: int) -> str:
    # Masked first (a card number typed into a reason), control characters spelt as
    # spaces, then cut to the column's size in bytes (Redshift counts bytes).
    cleaned = "".join(" " if ord(char) < 32 else char for char in mask_card_numbers(text))
    return cleaned.encode()[:limit].decode(errors="ignore")


def default_actor() -> str:
    """Who performs a step: `CAFE_OPERATOR`, the Lambda function, or user@host."""
    explicit = os.environ.get("CAFE_OPERATOR")
    if explicit:
        return _bounded(explicit, MAX_ACTOR_BYTES)
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    if function:
        return _bounded(f"lambda:{function}", MAX_ACTOR_BYTES)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return _bounded(f"{user}@{socket.gethostname()}", MAX_ACTOR_BYTES)


@dataclass(frozen=True)
class AuditRecord:
    action: Action
    performed_by: str = field(default_factory=default_actor)
    reason: str | None = None
    key_version: str | None = None
    card_fingerprint: str | None = None
    details: str | None = None
    audit_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    performed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def insert(
        self, *, transactions: int | str = 0, rejected_rows: int | str = 0, links: int | str = 0
    ) -> Statement:
        """The record's insert; each count an integer or a scalar SQL expression."""
        counts = {
            "transactions_affected": transactions,
            "rejected_rows_affected": rejected_rows,
            "links_affected": links,
        }
        values = {
            "audit_id": self.audit_id,
            "action": self.action.value,
            "performed_at": self.performed_at,
            "performed_by": _bounded(self.performed_by, MAX_ACTOR_BYTES),
            "reason": None if self.reason is None else _bounded(self.reason, MAX_REASON_BYTES),
            "key_version": self.key_version,
            "card_fingerprint": self.card_fingerprint,
            "details": None if self.details is None else _bounded(self.details, MAX_DETAILS_BYTES),
        }
        selected = [
            f"cast({counts[column]} as integer)"
            if column in counts
            else f"cast(%({column})s as {_COLUMN_TYPES[column]})"
            for column in PRIVACY_AUDIT_COLUMNS
        ]
        for count in counts.values():
            if isinstance(count, str) and not count.startswith("(select count(*) from "):
                raise ValueError("an audit count is an integer or a count(*) subquery")
        return Statement(
            f'insert into "raw".privacy_audit ({", ".join(PRIVACY_AUDIT_COLUMNS)})'
            f" select {', '.join(selected)}",
            values,
        )


@dataclass(frozen=True)
class AuditCounts:
    transactions: int
    rejected_rows: int
    links: int


def counts_of(store: SqlStore, audit_id: str) -> AuditCounts:
    """The counts an audit record holds (written by the transaction it records)."""
    rows = store.query(
        Statement(
            "select transactions_affected, rejected_rows_affected, links_affected"
            ' from "raw".privacy_audit where audit_id = %(audit_id)s',
            {"audit_id": audit_id},
        )
    )
    if not rows:
        raise RuntimeError("the audit record of the step is missing after its transaction")
    transactions, rejected, links = (int(str(value)) for value in rows[0])
    return AuditCounts(transactions, rejected, links)


def count_of(temporary_table: str) -> str:
    """The count expression of a temporary table, for `AuditRecord.insert`."""
    if not temporary_table.isidentifier():
        raise ValueError("not a table name")
    return f"(select count(*) from {temporary_table})"
