"""`cafe forget`, `cafe subject-access`, `cafe retention`, `cafe rotate-key`,
`cafe retire-key`: the privacy lifecycle (docs/privacy.md), on the warehouse in use.

Each command is a thin shell over `loader.privacy`, which runs the same statements on the
local PostgreSQL and on Redshift (`CAFE_WAREHOUSE=redshift`, through the Data API) and
records every step in `raw.privacy_audit`.

A card number given to `forget` or `subject-access` is never printed, logged or stored:
`--card -` reads it from a prompt that does not echo (or from standard input when that is
not a terminal), which also keeps it out of the shell's history and the process list.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loader.hashing import load_card_keys
from loader.privacy.access import RECORD_FIELDS, AccessReport, subject_access
from loader.privacy.erasure import forget_card
from loader.privacy.holders import card_digits
from loader.privacy.retention import apply_retention, retention_days_from_environment
from loader.privacy.rotation import (
    DEFAULT_OVERLAP_DAYS,
    StartOver,
    retire_key,
    ring_holder,
    rotate_key,
)
from loader.privacy.store import open_sql_store
from loader.settings import load_settings

console = Console()

CARD_HELP = (
    "the card number (spaces and dashes are fine); `-` asks for it at a prompt that does"
    " not echo, or reads it from standard input, so it stays out of your shell history and"
    " the process list"
)


def register(subparsers: Any) -> None:
    forget = subparsers.add_parser(
        "forget",
        help="erase one card holder: their transactions lose card hash and name (sales stay)",
        description="Erasure request: every transaction paid with the card (under every key"
        " version held, and earlier ones through links) loses its card hash and customer"
        " name in raw; refused lines holding the card are cleared; links go; the erasure is"
        " recorded in raw.privacy_audit. The next `cafe build` drops the customer from every"
        " dimension and mart; revenue, counts and products stay.",
    )
    forget.add_argument("--card", required=True, metavar="NUMBER|-", help=CARD_HELP)
    forget.add_argument("--reason", help="why (for the audit record, e.g. a ticket number)")
    forget.set_defaults(func=run_forget)

    access = subparsers.add_parser(
        "subject-access",
        help="what the warehouse holds about one card holder (access request)",
        description="Access request: the transactions paid with the card, the names held in"
        " raw, refused lines, links between its pseudonyms, earlier requests. Printed as"
        " tables, or written to a CSV file (mode 0600) with --out.",
    )
    access.add_argument("--card", required=True, metavar="NUMBER|-", help=CARD_HELP)
    access.add_argument("--out", type=Path, metavar="FILE.csv", help="write a CSV file")
    access.set_defaults(func=run_subject_access)

    retention = subparsers.add_parser(
        "retention",
        help="clear customer names (and refused lines) in raw older than the retention period",
    )
    retention.add_argument(
        "--days",
        type=int,
        default=None,
        help="retention period in days (default: CAFE_NAME_RETENTION_DAYS, else 30)",
    )
    retention.set_defaults(func=run_retention)

    rotate = subparsers.add_parser(
        "rotate-key",
        help="start a new card-hash key version; the old one links customers for a window",
    )
    rotate.add_argument(
        "--overlap-days",
        type=int,
        default=DEFAULT_OVERLAP_DAYS,
        help=f"days the previous key keeps hashing beside the new one (default"
        f" {DEFAULT_OVERLAP_DAYS})",
    )
    rotate.add_argument(
        "--lost-key",
        action="store_true",
        help="the local key file is lost and no backup exists: start a new key version alone"
        " (no window: customers seen before count as new; the lost versions are retired)",
    )
    rotate.set_defaults(func=run_rotate_key)

    retire = subparsers.add_parser(
        "retire-key", help="end a previous key version's window and destroy its key"
    )
    retire.add_argument("version", metavar="VERSION", help="the previous key version")
    retire.set_defaults(func=run_retire_key)


def read_card(value: str) -> str:
    """The card's digits from the argument, or from a prompt / standard input for `-`."""
    if value != "-":
        return card_digits(value)
    if sys.stdin.isatty():
        return card_digits(getpass.getpass("card number (not shown): "))
    return card_digits(sys.stdin.readline())


def run_forget(args: argparse.Namespace) -> int:
    digits = read_card(args.card)
    settings = load_settings()
    erasure = forget_card(
        open_sql_store(settings), load_card_keys(settings), digits, reason=args.reason
    )
    counts = erasure.counts
    console.print(
        f"[green]erased[/]: {counts.transactions} transaction(s) lost their card hash and"
        f" name, {counts.rejected_rows} refused line(s) cleared, {counts.links} link(s)"
        f" deleted (key versions {', '.join(erasure.holder.held_versions)},"
        f" {erasure.holder.linked_count} earlier pseudonym(s) through links)"
    )
    console.print(f"recorded in raw.privacy_audit as {erasure.audit_id}")
    console.print(
        "the next `cafe build` drops the customer from every dimension and mart;"
        " sales stay as they were"
    )
    return 0


def run_subject_access(args: argparse.Namespace) -> int:
    digits = read_card(args.card)
    settings = load_settings()
    report = subject_access(open_sql_store(settings), load_card_keys(settings), digits)
    if args.out is not None:
        _write_csv(args.out, report)
        console.print(f"{len(report.records())} record(s) written to {args.out}")
    else:
        _print_report(report)
    console.print(f"recorded in raw.privacy_audit as {report.audit_id}")
    return 0


def _write_csv(path: Path, report: AccessReport) -> None:
    # Personal data: created private, whatever the umask.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=RECORD_FIELDS)
        writer.writeheader()
        writer.writerows(report.records())


def _print_report(report: AccessReport) -> None:
    sections = {
        "transactions": (
            ("date", "branch", "basket", "total", "payment", "name", "file", "line"),
            [r for r in report.records() if r["record"] == "transaction"],
        ),
        "refused lines": (
            ("file", "line", "detail"),
            [r for r in report.records() if r["record"] == "refused line"],
        ),
        "pseudonym links": (
            ("date", "detail"),
            [r for r in report.records() if r["record"] == "pseudonym link"],
        ),
        "earlier requests": (
            ("record", "date", "detail"),
            [r for r in report.records() if r["record"].startswith("earlier")],
        ),
    }
    for title, (columns, rows) in sections.items():
        table = Table(title=f"{title} ({len(rows)})", title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(row[column] for column in columns))
        console.print(table)


def run_retention(args: argparse.Namespace) -> int:
    days = args.days if args.days is not None else retention_days_from_environment()
    run = apply_retention(open_sql_store(load_settings()), days)
    busy = run.files_left_busy
    console.print(
        f"retention {days} day(s): {run.counts.transactions} name(s) of sales dated before"
        f" {run.cutoff.day:%Y-%m-%d} cleared, {run.counts.rejected_rows} refused line(s)"
        f" from before {run.cutoff.moment:%Y-%m-%d %H:%M} UTC cleared"
        + (f"; {busy} file(s) busy loading, left for the next run" if busy else "")
    )
    console.print(f"recorded in raw.privacy_audit as {run.audit_id}")
    return 0


def run_rotate_key(args: argparse.Namespace) -> int:
    settings = load_settings()
    rotation = rotate_key(
        open_sql_store(settings),
        ring_holder(settings),
        overlap_days=args.overlap_days,
        lost_key=args.lost_key,
    )
    if isinstance(rotation, StartOver):
        console.print(
            f"[yellow]started over[/]: key version {rotation.version} is the only key; retired"
            f" without their key: {', '.join(rotation.lost_versions) or 'none'}. Customers"
            " seen before count as new when they come back. Back up the new key file."
        )
        console.print(f"recorded in raw.privacy_audit as {rotation.audit_id}")
        return 0
    what = "recorded the rotation" if rotation.resumed else "rotated"
    console.print(
        f"[green]{what}[/]: key version {rotation.version} is current;"
        f" {rotation.previous_version} also hashes every card until"
        f" {rotation.overlap_ends_at:%Y-%m-%d %H:%M} UTC, so customers who return by then"
        " stay the same customer"
    )
    console.print(
        f"end the window and destroy the old key with `cafe retire-key"
        f" {rotation.previous_version}`; recorded in raw.privacy_audit as {rotation.audit_id}"
    )
    return 0


def run_retire_key(args: argparse.Namespace) -> int:
    settings = load_settings()
    retirement = retire_key(open_sql_store(settings), ring_holder(settings), args.version)
    if retirement.already_retired_on is not None:
        console.print(
            f"key version {retirement.version} was already retired on"
            f" {retirement.already_retired_on}: nothing to do"
        )
        return 0
    what = "recorded the retirement of" if retirement.resumed else "retired"
    console.print(
        f"[green]{what}[/] key version {retirement.version}: its key is destroyed, its"
        " hashes and links stay; cards seen from now on are hashed with the current key only"
    )
    console.print(f"recorded in raw.privacy_audit as {retirement.audit_id}")
    return 0
