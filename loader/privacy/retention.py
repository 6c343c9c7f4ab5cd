"""`cafe retention` and the Lambda's daily `{"task": "retention"}`: customer names kept no
longer than `CAFE_NAME_RETENTION_DAYS` (default 30).

* A name is cleared from `raw.transactions` once the transaction's own date (the till's
  `dd/mm/YYYY`) is more than N days before today (UTC): the age of a name is the age of
  the purchase, so a late file of old sales is cleared at the next run, not kept N more
  days. Card hashes, baskets and totals stay: sales and returning customers need no name.
* A refused line's text (which may hold a name) and its card hash are cleared once it was
  refused more than N days ago (`rejected_at`: a refused line's date may be unreadable).
  The row, its reason and line number stay, so every file still reconciles.

Idempotent: a second run finds nothing (each change sets a column to null where it is not
null). Safe while loads run: on PostgreSQL the work goes file by file in small batches,
each its own short transaction that runs only when no load of its files is in flight (the
loader's per-key advisory locks, tried, never waited for); a batch skipped that way is
tried again at the end of the run, and what is still busy then waits for the next run. On
Redshift, where writes to a table take turns anyway, one transaction does it all after
`lock "raw".loaded_files`, as a load batch would. The run is recorded in
`raw.privacy_audit` (action `retention`) with the counts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from loader.errors import ConfigurationError
from loader.privacy.audit import Action, AuditCounts, AuditRecord, count_of, counts_of
from loader.privacy.store import Dialect, SqlStore, Statement, in_list, lock_tables

DEFAULT_RETENTION_DAYS: Final = 30
RETENTION_DAYS_VARIABLE: Final = "CAFE_NAME_RETENTION_DAYS"
FILES_PER_BATCH: Final = 20

# The till date `dd/mm/YYYY HH:MM` as `YYYYMMDD` text, compared with the cutoff's: no date
# parsing in SQL, so no row can make the statement fail; a value not in that form
# (impossible for a line the contract accepted) is left alone.
_DATE_KEY: Final = (
    "substring(transaction_date, 7, 4) || substring(transaction_date, 4, 2)"
    " || substring(transaction_date, 1, 2)"
)
_OLD_NAME: Final = (
    "customer_name is not null and substring(transaction_date, 3, 1) = '/'"
    f" and substring(transaction_date, 6, 1) = '/' and {_DATE_KEY} < %(cutoff_day)s"
)
_OLD_LINE: Final = (
    "rejected_at < %(cutoff_time)s and (raw_line is not null or card_hash is not null)"
)


def retention_days_from_environment() -> int:
    """`CAFE_NAME_RETENTION_DAYS` as a whole number of days (at least 1)."""
    text = os.environ.get(RETENTION_DAYS_VARIABLE, "").strip()
    if not text:
        return DEFAULT_RETENTION_DAYS
    if not text.isdigit() or int(text) < 1:
        raise ConfigurationError(
            f"{RETENTION_DAYS_VARIABLE} must be a whole number of days, 1 or more"
        )
    return int(text)


@dataclass(frozen=True)
class Cutoff:
    """Names of sales dated before `day`, and lines refused before `moment`, are cleared."""

    days: int
    day: date
    moment: datetime

    @classmethod
    def of(cls, days: int, now: datetime | None = None) -> Cutoff:
        if days < 1:
            raise ConfigurationError("the retention period is at least 1 day")
        clock = now or datetime.now(UTC)
        return cls(
            days, clock.astimezone(UTC).date() - timedelta(days=days), clock - timedelta(days=days)
        )

    @property
    def params(self) -> dict[str, object]:
        return {"cutoff_day": f"{self.day:%Y%m%d}", "cutoff_time": self.moment}


@dataclass(frozen=True)
class RetentionRun:
    audit_id: str
    cutoff: Cutoff
    counts: AuditCounts
    files_left_busy: int = 0


def apply_retention(
    store: SqlStore, days: int, *, now: datetime | None = None, performed_by: str | None = None
) -> RetentionRun:
    """Clear names and refused lines older than `days`; record the run."""
    cutoff = Cutoff.of(days, now)
    extra = {"performed_by": performed_by} if performed_by else {}
    if store.dialect is Dialect.REDSHIFT:
        record = AuditRecord(
            Action.RETENTION, details=_details(cutoff), performed_at=datetime.now(UTC), **extra
        )
        store.execute(redshift_retention_statements(cutoff, record))
        return RetentionRun(record.audit_id, cutoff, counts_of(store, record.audit_id))
    names, lines, busy = _in_small_batches(store, cutoff)
    record = AuditRecord(
        Action.RETENTION,
        details=_details(cutoff)
        + (f"; {busy} file(s) were loading throughout and wait for the next run" if busy else ""),
        performed_at=datetime.now(UTC),
        **extra,
    )
    store.execute([record.insert(transactions=names, rejected_rows=lines)])
    return RetentionRun(record.audit_id, cutoff, AuditCounts(names, lines, 0), busy)


def _details(cutoff: Cutoff) -> str:
    return (
        f"retention {cutoff.days} day(s): names of sales dated before {cutoff.day:%Y-%m-%d},"
        f" refused lines from before {cutoff.moment:%Y-%m-%d %H:%M} UTC"
    )


def redshift_retention_statements(cutoff: Cutoff, record: AuditRecord) -> list[Statement]:
    """One transaction that clears, counts and records (Redshift)."""
    params = cutoff.params
    return [
        lock_tables(Dialect.REDSHIFT, ("loaded_files", "transactions", "rejected_rows")),
        Statement(
            "create temp table retention_names as select source_key, line_number"
            f' from "raw".transactions where {_OLD_NAME}',
            params,
        ),
        Statement(
            "create temp table retention_lines as select source_key, line_number"
            f' from "raw".rejected_rows where {_OLD_LINE}',
            params,
        ),
        Statement(f'update "raw".transactions set customer_name = null where {_OLD_NAME}', params),
        Statement(
            'update "raw".rejected_rows set raw_line = null, card_hash = null,'
            f" card_key_version = null where {_OLD_LINE}",
            params,
        ),
        record.insert(
            transactions=count_of("retention_names"), rejected_rows=count_of("retention_lines")
        ),
    ]


def batch_statements(cutoff: Cutoff, keys: Sequence[str]) -> list[Statement]:
    """One small PostgreSQL transaction: the names, then the refused lines, of a batch of
    files (the store reports how many rows each changed)."""
    listed, params = in_list("key", keys)
    params = {**params, **cutoff.params}
    return [
        Statement(
            'update "raw".transactions set customer_name = null'
            f" where source_key in {listed} and {_OLD_NAME}",
            params,
        ),
        Statement(
            'update "raw".rejected_rows set raw_line = null, card_hash = null,'
            f" card_key_version = null where source_key in {listed} and {_OLD_LINE}",
            params,
        ),
    ]


def _in_small_batches(store: SqlStore, cutoff: Cutoff) -> tuple[int, int, int]:
    """(names cleared, lines cleared, files still busy) on PostgreSQL, file batch by batch."""
    keys = [
        str(key)
        for (key,) in store.query(
            Statement(
                f'select source_key from "raw".transactions where {_OLD_NAME}'
                f' union select source_key from "raw".rejected_rows where {_OLD_LINE}'
                " order by 1",
                cutoff.params,
            )
        )
    ]
    names = lines = 0
    pending = [
        keys[start : start + FILES_PER_BATCH] for start in range(0, len(keys), FILES_PER_BATCH)
    ]
    for attempt in range(2):
        busy: list[list[str]] = []
        for batch in pending:
            changed = store.execute(batch_statements(cutoff, batch), unless_loading=batch)
            if changed is None:
                # Tried alone on the second pass, so one busy file holds back no other.
                busy.extend([[key] for key in batch] if attempt == 0 else [batch])
                continue
            names, lines = names + changed[0], lines + changed[1]
        pending = busy
    return names, lines, sum(len(batch) for batch in pending)
