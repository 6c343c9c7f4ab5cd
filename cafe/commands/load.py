"""`cafe load`, `cafe ingest`, `cafe ledger`: load files and see what the ledger says.

`cafe load` runs files through `loader.service` directly; `cafe ingest` goes the way
production does — upload to the landing bucket, then drain the queue through the Lambda
handler. Both print one row per file and exit 0 only when every file was processed
(loaded, replaced, or skipped as a duplicate or a stale version; rejected rows are fine).
A failed file, or one refused whole, makes the exit code 1; so does a card key the
warehouse does not recognise (one line saying how to restore it, nothing loaded).

Before the first load the local card key is created, but only for a warehouse that holds
no card hash yet (`cafe.stack.ensure_card_key`); a local file's modification time orders
it against earlier versions of the same key.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cafe.stack import ensure_card_key
from loader.aws import aws_client
from loader.errors import CafeError, ConfigurationError
from loader.hashing import CardKeys, load_card_keys
from loader.ledger import LedgerRow, LoadResult, Status, latest_loads_of, recent_loads
from loader.service import load_path, stored_key
from loader.settings import LANDING_PREFIX, Settings, load_settings
from loader.writers import open_warehouse

__all__ = ["ingest_and_report", "print_recent_loads", "recent_loads", "register"]

console = Console()
# Files smaller than this load in well under a second: no progress bar for them.
PROGRESS_MIN_BYTES = 8 << 20
_STATUS_STYLE = {
    "loaded": "green",
    "replaced": "cyan",
    "duplicate": "dim",
    "stale": "dim",
    "started": "yellow",
    "failed": "red",
    "refused": "red",
}


def register(subparsers: Any) -> None:
    load = subparsers.add_parser("load", help="load local files through the loader")
    load.add_argument("files", nargs="+", type=Path, metavar="FILE")
    load.add_argument(
        "--key-prefix", default="", help="prefix of the source key (default: the file name)"
    )
    load.set_defaults(func=run_load)
    ingest = subparsers.add_parser(
        "ingest", help="upload files to the landing bucket and drain the queue"
    )
    ingest.add_argument("files", nargs="+", type=Path, metavar="FILE")
    ingest.set_defaults(func=run_ingest)
    ledger = subparsers.add_parser("ledger", help="recent loads from the load ledger")
    ledger.add_argument("--limit", type=int, default=20, help="rows to show")
    ledger.set_defaults(func=run_ledger)


def _check_files(files: Sequence[Path]) -> None:
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise CafeError("no such file: " + ", ".join(missing))


@contextmanager
def _progress() -> Iterator[Progress]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        yield progress


def run_load(args: argparse.Namespace) -> int:
    files: list[Path] = args.files
    _check_files(files)
    settings = load_settings()
    warehouse = open_warehouse(settings)
    keys = _card_keys(settings)
    # During a rotation's overlap window each card is hashed with the previous key too, and
    # the two hashes are linked: the same code path as the Lambda's.
    link_key = keys.linking_key()
    results: list[LoadResult] = []
    with _progress() as progress:
        for path in files:
            size = path.stat().st_size
            task = progress.add_task(
                stored_key(path.name), total=size, visible=size >= PROGRESS_MIN_BYTES
            )
            results.append(
                load_path(
                    path,
                    args.key_prefix + path.name,
                    warehouse=warehouse,
                    key=keys.current,
                    link_key=link_key,
                    on_progress=functools.partial(_show_done, progress, task),
                )
            )
            progress.remove_task(task)
    table = _results_table("cafe load")
    for result in results:
        table.add_row(
            result.source_key,
            _styled(result.status.value),
            str(result.counts.read),
            str(result.counts.loaded),
            str(result.counts.rejected),
            f"{result.seconds:.2f}",
            _note(result),
        )
    console.print(table)
    return 0 if all(_is_loaded(result.status) for result in results) else 1


def _card_keys(settings: Settings) -> CardKeys:
    """The key ring to hash with; the local key file is created first where that is safe."""
    uses_key_file = not settings.card_key_secret_arn and settings.warehouse == "postgres"
    if uses_key_file and settings.database_url:
        ensure_card_key(settings.card_key_file, settings.database_url)
    return load_card_keys(settings)


def _note(result: LoadResult) -> str:
    if result.error_text:
        return result.error_text
    if result.status is Status.DUPLICATE and result.duplicate_of != result.source_key:
        return f"same bytes as {result.duplicate_of}"
    if result.status is Status.STALE:
        return "older than the current version: nothing replaced"
    return ""


def _show_done(progress: Progress, task: TaskID, done: int) -> None:
    progress.update(task, completed=done)


def _is_loaded(status: Status) -> bool:
    """Loaded, or nothing to load (already there, or older than what is): a refused file
    is reported, not counted as done."""
    return status in (Status.LOADED, Status.REPLACED, Status.DUPLICATE, Status.STALE)


def run_ingest(args: argparse.Namespace) -> int:
    files: list[Path] = args.files
    _check_files(files)
    return ingest_and_report(files, load_settings())


def ingest_and_report(files: Sequence[Path], settings: Settings) -> int:
    """Upload `files` to landing/, drain the queue through the handler, print the results.

    Returns the exit code: 0 when every file was loaded (or was already), 1 otherwise.
    """
    # The handler's JSON logs and EMF metrics are for CloudWatch; at a terminal the table
    # below says the same. Set before the handler module creates its logger and metrics.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from cafe.local_queue import drain_queue

    if not settings.queue_url:
        raise ConfigurationError("no landing queue: run `cafe up` first")
    _card_keys(settings)  # the handler reads it; created first where that is safe
    s3 = aws_client(settings, "s3")
    keys = [LANDING_PREFIX + path.name for path in files]
    uploaded_at = datetime.now(UTC)
    with _progress() as progress:
        for path, key in zip(files, keys, strict=True):
            size = path.stat().st_size
            task = progress.add_task(
                f"upload {stored_key(path.name)}", total=size, visible=size >= PROGRESS_MIN_BYTES
            )
            s3.upload_file(
                str(path),
                settings.landing_bucket,
                key,
                Callback=functools.partial(progress.advance, task),
            )
            progress.remove_task(task)
    started = time.monotonic()
    report = drain_queue(settings)
    # The ledger holds a key with a card number in it only masked, and so does this table.
    shown = [stored_key(key) for key in keys]
    rows = latest_loads_of(settings, shown)
    table = _results_table("cafe ingest")
    processed = True
    for key in shown:
        row = rows.get(key)
        if row is None or row.started_at is None or row.started_at < uploaded_at:
            processed = False
            table.add_row(
                key, _styled("failed"), "", "", "", "", "no load recorded for this upload"
            )
            continue
        processed = processed and _is_loaded(Status(row.status))
        table.add_row(*_ledger_cells(row))
    console.print(table)
    console.print(
        f"drained {report.succeeded + len(report.failed)} message(s) in {report.batches}"
        f" batch(es), {len(report.failed)} left for redrive, {time.monotonic() - started:.1f} s"
    )
    return 0 if processed and not report.failed else 1


def run_ledger(args: argparse.Namespace) -> int:
    print_recent_loads(load_settings(), args.limit)
    return 0


def print_recent_loads(settings: Settings, limit: int = 20) -> None:
    """The latest loads as a table (what `cafe ledger` and `cafe status` show)."""
    rows = recent_loads(settings, limit)
    if not rows:
        console.print("no loads recorded yet")
        return
    table = _results_table("recent loads", current=True)
    for row in rows:
        table.add_row(*_ledger_cells(row), "yes" if row.is_current else "")
    console.print(table)


def _results_table(title: str, *, current: bool = False) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("status")
    for name in ("read", "loaded", "rejected", "seconds"):
        table.add_column(name, justify="right")
    table.add_column("note", overflow="fold")
    if current:
        table.add_column("current")
    return table


def _ledger_cells(row: LedgerRow) -> tuple[str, ...]:
    seconds = row.seconds
    return (
        row.source_key,
        _styled(row.status),
        str(row.rows_read),
        str(row.rows_loaded),
        str(row.rows_rejected),
        f"{seconds:.2f}" if seconds is not None else "",
        row.note,
    )


def _styled(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"
