"""`cafe subject-access`: what the warehouse holds about one card holder (an access request).

Under any of the card's hashes (`holders.resolve_holder`): the transactions (date, branch,
basket, total, payment type, the name held in `raw`), the refused lines that hold the card
(their text is masked at load), the links between the card's pseudonyms across key
rotations, and the earlier erasure and access requests whose fingerprint matches the card.
The hashes themselves are not shown: they mean nothing to the person asking, and a report
that travels by e-mail should not carry them.

The request is recorded in `raw.privacy_audit` (action `subject-access`) with what was
found, in counts, and the card's erasure fingerprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from loader.hashing import CardKeys, erasure_fingerprint, fingerprint_matches
from loader.privacy.audit import Action, AuditRecord
from loader.privacy.holders import resolve_holder
from loader.privacy.store import SqlStore, Statement, in_list


@dataclass(frozen=True)
class HeldTransaction:
    source_key: str
    line_number: int
    transaction_date: str
    branch_name: str
    basket: str
    total_amount: Decimal
    payment_type: str
    customer_name: str | None
    card_key_version: str | None


@dataclass(frozen=True)
class HeldRejection:
    source_key: str
    line_number: int
    reason: str
    raw_line: str | None
    rejected_at: str
    card_key_version: str | None


@dataclass(frozen=True)
class HeldLink:
    card_key_version: str
    previous_key_version: str
    linked_at: str


@dataclass(frozen=True)
class PastRequest:
    action: str
    performed_at: str
    reason: str | None
    transactions_affected: int
    rejected_rows_affected: int


@dataclass(frozen=True)
class AccessReport:
    audit_id: str
    transactions: tuple[HeldTransaction, ...]
    rejections: tuple[HeldRejection, ...]
    links: tuple[HeldLink, ...]
    past_requests: tuple[PastRequest, ...]

    def records(self) -> list[dict[str, str]]:
        """Every item as one flat record (`RECORD_FIELDS`), for a table or a CSV file."""
        records = [
            _record(
                "transaction",
                file=row.source_key,
                line=str(row.line_number),
                date=row.transaction_date,
                branch=row.branch_name,
                basket=row.basket,
                total=str(row.total_amount),
                payment=row.payment_type,
                name=row.customer_name or "",
                detail=f"card pseudonym under key version {row.card_key_version}",
            )
            for row in self.transactions
        ]
        records += [
            _record(
                "refused line",
                file=row.source_key,
                line=str(row.line_number),
                detail=f"{row.reason}; refused at {row.rejected_at}; as stored:"
                f" {row.raw_line if row.raw_line is not None else '(text cleared)'}",
            )
            for row in self.rejections
        ]
        records += [
            _record(
                "pseudonym link",
                date=row.linked_at,
                detail=f"pseudonym under key version {row.card_key_version} linked to the one"
                f" under {row.previous_key_version} (the same card across a key rotation)",
            )
            for row in self.links
        ]
        records += [
            _record(
                f"earlier {row.action} request",
                date=row.performed_at,
                detail=f"{row.transactions_affected} transaction(s),"
                f" {row.rejected_rows_affected} refused line(s)"
                + (f"; reason: {row.reason}" if row.reason else ""),
            )
            for row in self.past_requests
        ]
        return records


RECORD_FIELDS = (
    "record",
    "file",
    "line",
    "date",
    "branch",
    "basket",
    "total",
    "payment",
    "name",
    "detail",
)


def _record(kind: str, **values: str) -> dict[str, str]:
    return {name: values.get(name, "") for name in RECORD_FIELDS} | {"record": kind}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def subject_access(
    store: SqlStore, keys: CardKeys, digits: str, *, performed_by: str | None = None
) -> AccessReport:
    """Everything held about the card `digits` (normalised, `holders.card_digits`)."""
    holder = resolve_holder(store, keys, digits)
    hashes, params = in_list("hash", holder.hashes)
    transactions = tuple(
        HeldTransaction(
            str(source_key),
            int(line),
            str(date),
            str(branch),
            str(basket),
            Decimal(str(total)),
            str(payment),
            None if name is None else str(name),
            None if version is None else str(version),
        )
        for source_key, line, date, branch, basket, total, payment, name, version in store.query(
            Statement(
                "select source_key, line_number, transaction_date, branch_name, basket,"
                " total_amount, payment_type, customer_name, card_key_version"
                f' from "raw".transactions where card_hash in {hashes}'
                " order by source_key, line_number",
                params,
            )
        )
    )
    rejections = tuple(
        HeldRejection(
            str(source_key),
            int(line),
            str(reason),
            None if raw_line is None else str(raw_line),
            _text(rejected_at),
            None if version is None else str(version),
        )
        for source_key, line, reason, raw_line, rejected_at, version in store.query(
            Statement(
                "select source_key, line_number, reason, raw_line, rejected_at, card_key_version"
                f' from "raw".rejected_rows where card_hash in {hashes}'
                " order by source_key, line_number",
                params,
            )
        )
    )
    links = tuple(
        HeldLink(str(version), str(previous), _text(linked_at))
        for version, previous, linked_at in store.query(
            Statement(
                "select card_key_version, previous_key_version, linked_at from"
                f' "raw".card_links where card_hash in {hashes} or previous_card_hash in {hashes}'
                " order by linked_at",
                params,
            )
        )
    )
    past = tuple(_past_requests(store, digits))
    extra = {"performed_by": performed_by} if performed_by else {}
    record = AuditRecord(
        Action.SUBJECT_ACCESS,
        key_version=keys.current.version,
        card_fingerprint=erasure_fingerprint(digits),
        details=f"{len(past)} earlier request(s) about this card found",
        performed_at=datetime.now(UTC),
        **extra,
    )
    store.execute(
        [
            record.insert(
                transactions=len(transactions), rejected_rows=len(rejections), links=len(links)
            )
        ]
    )
    return AccessReport(record.audit_id, transactions, rejections, links, past)


def _past_requests(store: SqlStore, digits: str) -> list[PastRequest]:
    rows: Sequence[tuple[Any, ...]] = store.query(
        Statement(
            "select action, performed_at, reason, transactions_affected,"
            ' rejected_rows_affected, card_fingerprint from "raw".privacy_audit'
            " where card_fingerprint is not null order by performed_at"
        )
    )
    return [
        PastRequest(
            str(action), _text(at), None if reason is None else str(reason), int(tx), int(rj)
        )
        for action, at, reason, tx, rj, fingerprint in rows
        if fingerprint_matches(str(fingerprint), digits)
    ]
