"""`cafe forget`: unlink one card holder everywhere (an erasure request).

In one transaction, on PostgreSQL or Redshift alike:

* every transaction paid with the card (any of its hashes: `holders.resolve_holder`) loses
  its card hash, key version and customer name; the sale itself (date, branch, basket,
  total, payment type) stays, since sales are the business's records;
* every refused line holding the card loses its text and hash (the reason and line number
  stay, so the ledger still reconciles); lines refused before they kept a hash are found by
  the masked form of the number (`holders.masked_line_pattern`);
* every link involving one of its hashes is deleted;
* the ledger rows of the changed files get `rows_revised_at`, which makes the next dbt
  build rebuild those files in the incremental facts, so the customer leaves every
  dimension and mart while revenue, counts and products stay;
* an audit record (`raw.privacy_audit`, action `forget`) keeps when, who, why, how many
  rows, and the card's `erasure_fingerprint` - never the card, never its hash.

The tables are locked against writes for the transaction's few seconds (in the order loads
take them), so a load in flight either commits before and is erased, or waits and
commits after. A card used again after its erasure is new data: it is hashed again, a new
customer to the warehouse (a list of erased cards would have to keep their hashes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from loader.hashing import CardKeys, erasure_fingerprint
from loader.privacy.audit import Action, AuditCounts, AuditRecord, count_of, counts_of
from loader.privacy.holders import CardHolder, masked_line_pattern, resolve_holder
from loader.privacy.store import Dialect, SqlStore, Statement, in_list, lock_tables

# The order in which a PostgreSQL load writes them (see `lock_tables`); on Redshift the
# ledger comes first, as in every load batch.
_POSTGRES_ORDER = ("transactions", "rejected_rows", "card_links", "loaded_files")
_REDSHIFT_ORDER = ("loaded_files", "transactions", "rejected_rows", "card_links")


@dataclass(frozen=True)
class Erasure:
    audit_id: str
    counts: AuditCounts
    holder: CardHolder


def forget_statements(
    dialect: Dialect, holder: CardHolder, pattern: str, record: AuditRecord
) -> list[Statement]:
    """The erasure's transaction (pure): lock, count, change, record."""
    hashes, params = in_list("hash", holder.hashes)
    params = {**params, "pattern": pattern, "revised_at": record.performed_at}
    rejected = (
        f"(card_hash in {hashes} or (card_hash is null and raw_line is not null"
        " and raw_line ~ %(pattern)s))"
    )
    linked = f"(card_hash in {hashes} or previous_card_hash in {hashes})"
    order = _POSTGRES_ORDER if dialect is Dialect.POSTGRES else _REDSHIFT_ORDER

    def statement(sql: str) -> Statement:
        return Statement(sql, params)

    return [
        lock_tables(dialect, order),
        statement(
            "create temp table erased_transactions as select source_key, line_number"
            f' from "raw".transactions where card_hash in {hashes}'
        ),
        statement(
            "create temp table erased_rejections as select source_key, line_number"
            f' from "raw".rejected_rows where {rejected}'
        ),
        statement(
            "create temp table erased_links as select card_hash, previous_card_hash"
            f' from "raw".card_links where {linked}'
        ),
        statement(
            'update "raw".transactions set card_hash = null, card_key_version = null,'
            f" customer_name = null where card_hash in {hashes}"
        ),
        statement(
            'update "raw".rejected_rows set raw_line = null, card_hash = null,'
            f" card_key_version = null where {rejected}"
        ),
        statement(f'delete from "raw".card_links where {linked}'),
        statement(
            'update "raw".loaded_files set rows_revised_at = %(revised_at)s'
            " where is_current and source_key in"
            " (select distinct source_key from erased_transactions)"
        ),
        record.insert(
            transactions=count_of("erased_transactions"),
            rejected_rows=count_of("erased_rejections"),
            links=count_of("erased_links"),
        ),
    ]


def forget_card(
    store: SqlStore,
    keys: CardKeys,
    digits: str,
    *,
    reason: str | None,
    performed_by: str | None = None,
) -> Erasure:
    """Erase one card holder (`digits`: normalised, `holders.card_digits`)."""
    holder = resolve_holder(store, keys, digits)
    extra = {"performed_by": performed_by} if performed_by else {}
    record = AuditRecord(
        Action.FORGET,
        reason=reason,
        key_version=keys.current.version,
        card_fingerprint=erasure_fingerprint(digits),
        details=(
            f"card hashed with the key versions held ({', '.join(holder.held_versions)});"
            f" {holder.linked_count} earlier pseudonym(s) found through links"
        ),
        performed_at=datetime.now(UTC),
        **extra,
    )
    store.execute(forget_statements(store.dialect, holder, masked_line_pattern(digits), record))
    return Erasure(record.audit_id, counts_of(store, record.audit_id), holder)
