"""Loader benchmark: our loader against its anchors, at two file sizes.

    python -m bench.bench_load [--rows 1000000] [--small-rows 250000]
                               [--row-at-a-time-rows 50000] [--repeats 3]

For each size it writes an export in the real format (`synthesise`: CRLF, quoted multi-item
baskets, 70% card payments drawn from a pool as large as the file, so that about half of
the card lines hold a card not seen before in the file: ~500k distinct cards at 1M rows)
and times, in a scratch database of the running stack (`cafe up`, or CAFE_DATABASE_URL):

(a) raw COPY of the file into a text table (no parsing, validation or hashing): the anchor,
    the ceiling for getting these bytes into PostgreSQL. The table is an ordinary (logged)
    one, as `raw.transactions` is: an unlogged table would not survive a crash, which is no
    ceiling for a load that must. The unlogged figure is printed beside it;
(b) our loader (`loader.service.load_path` with the PostgreSQL writer: read, validate,
    hash, COPY, ledger), each run in a child process so that its peak RSS is its own, into
    a fresh database whose raw schema exists (as in production);
(c) the server's floor: a COPY of the loader's own output (the rows it wrote, as CSV) into
    a table exactly like `raw.transactions` (its primary key included): what the server
    spends on the loader's rows however fast the loader is;

(a)-(c) are the best of `--repeats` runs (the machine is shared and noisy); the peak RSS is
the highest of the loader's runs. Once, at the large size:

(d) a row-at-a-time loader: csv module, HMAC per row, one INSERT per row, one commit: what
    a naive loader does (timed on the first `--row-at-a-time-rows` rows, as a rate).

`loader_rows` returns the figures as rows of `make bench`'s table (name, figure, anchor,
ratio); `main` prints them. The scratch databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from loader.errors import ConfigurationError
from loader.schema import TRANSACTION_COLUMNS, ensure_schema
from loader.settings import load_settings

HEADER = "date,location,name,basket,total,payment_type,card_number"
_ITEMS = [
    ("Regular Latte", 215),
    ("Large Latte", 245),
    ("Regular Flat white", 215),
    ("Large Flavoured iced latte - Caramel", 325),
    ("Regular Speciality Tea - Earl Grey", 130),
    ("Large Smoothies - Glowing Greens", 250),
    ("Regular Glass of milk", 70),
]
_NAMES = ["Ann Lee", "Richard Copeland", "Scott Owens", "Tina Burke", "Joyce Ingle", "Bo Chan"]
# A till writes a transaction every few seconds at the busiest branches.
_SECONDS_BETWEEN_TRANSACTIONS = 3
_CARD_SHARE = 0.7
# The acceptance figures.
RATIO_GOAL = 0.6
RSS_LIMIT_MIB = 400.0
_COLUMNS = sql.SQL(", ").join(sql.Identifier(column) for column in TRANSACTION_COLUMNS)

_OURS = """
import json, resource, sys, time
from pathlib import Path
from loader.hashing import CardKey
from loader.service import load_path
from loader.writers.postgres import PostgresWarehouse
path, url = Path(sys.argv[1]), sys.argv[2]
key = CardKey(b"b" * 32, "bench")
started = time.perf_counter()
result = load_path(path, path.name, warehouse=PostgresWarehouse(url), key=key)
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "status": result.status.value,
                  "loaded": result.counts.loaded, "rejected": result.counts.rejected,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@dataclass(frozen=True)
class BenchRow:
    """One row of `make bench`'s table: a figure, the anchor it is measured against, and
    their ratio (all as printed)."""

    name: str
    figure: str
    anchor: str
    ratio: str


@dataclass(frozen=True)
class SizeFigures:
    """What one file size measured (seconds are the best of the repeats)."""

    rows: int
    size_mib: float
    copy_seconds: float  # (a), logged text table
    unlogged_copy_seconds: float  # (a), unlogged text table, for reference
    loader_seconds: float  # (b)
    loader_peak_rss_mib: float  # (b), the highest of the runs
    floor_seconds: float  # (c)

    def rate(self, seconds: float) -> float:
        return self.rows / seconds


def synthesise(path: Path, rows: int, seed: int = 7) -> None:
    """An export in the real format: CRLF, quoted multi-item baskets, a card pool as large
    as the file (so about half of the card lines bring a new card)."""
    rng = random.Random(seed)
    cards = [str(rng.randrange(10**15, 10**16)) for _ in range(rows)]
    start = datetime(2024, 1, 13, 7, 0)
    minutes: dict[int, str] = {}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        handle.write(HEADER + "\r\n")
        for index in range(rows):
            minute = index * _SECONDS_BETWEEN_TRANSACTIONS // 60
            if minute not in minutes:
                minutes.clear()
                minutes[minute] = (start + timedelta(minutes=minute)).strftime("%d/%m/%Y %H:%M")
            items = rng.choices(_ITEMS, k=rng.randint(1, 5))
            basket = ", ".join(f"{name} - {pence / 100:.2f}" for name, pence in items)
            total = sum(pence for _, pence in items) / 100
            card = rng.random() < _CARD_SHARE
            writer.writerow(
                [
                    minutes[minute],
                    "Chesterfield",
                    rng.choice(_NAMES),
                    basket,
                    f"{total:.2f}".rstrip("0").rstrip("."),
                    "CARD" if card else "CASH",
                    rng.choice(cards) if card else "",
                ]
            )


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new, empty database on the server of `url` (dropped afterwards): its URL."""
    name = f"cafe_bench_{uuid.uuid4().hex[:8]}"
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def _copy_file(url: str, path: Path, statement: str) -> float:
    """Seconds to COPY a file's bytes with `statement`, committed."""
    with psycopg.connect(url) as connection:
        started = time.perf_counter()
        with (
            connection.cursor() as cursor,
            path.open("rb") as handle,
            cursor.copy(statement) as copy,
        ):
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        connection.commit()
        return time.perf_counter() - started


def raw_copy(url: str, path: Path, *, unlogged: bool = False) -> float:
    """(a): seconds to COPY the export into a text table of its seven columns."""
    table = f"bench_raw_copy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            sql.SQL(
                "create {} table {} (date text, location text, name text, basket text,"
                " total text, payment_type text, card_number text)"
            ).format(sql.SQL("unlogged" if unlogged else ""), sql.Identifier(table))
        )
    try:
        return _copy_file(
            url,
            path,
            sql.SQL("copy {} from stdin with (format csv, header true)")
            .format(sql.Identifier(table))
            .as_string(),
        )
    finally:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(sql.SQL("drop table {}").format(sql.Identifier(table)))


def run_loader(url: str, path: Path, rows_csv: Path | None = None) -> dict[str, float | str | int]:
    """(b): one load of `path` by our loader in a child process, into a fresh database;
    with `rows_csv`, the rows it wrote are saved there as CSV."""
    with scratch_database(url) as database:
        with psycopg.connect(database, autocommit=True) as connection:
            ensure_schema(connection)
        output = subprocess.run(
            [sys.executable, "-c", _OURS, str(path), database],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        if rows_csv is not None:
            with (
                psycopg.connect(database, autocommit=True) as connection,
                connection.cursor() as cursor,
                rows_csv.open("wb") as handle,
                cursor.copy(
                    sql.SQL("copy (select {} from raw.transactions) to stdout with (format csv)")
                    .format(_COLUMNS)
                    .as_string(connection)
                ) as copy,
            ):
                for chunk in copy:
                    handle.write(chunk)
    measured: dict[str, float | str | int] = json.loads(output.strip().splitlines()[-1])
    return measured


def server_floor(url: str, rows_csv: Path) -> float:
    """(c): seconds the server spends on a COPY of the loader's own rows (as CSV) into a
    table exactly like raw.transactions."""
    with scratch_database(url) as database:
        with psycopg.connect(database, autocommit=True) as connection:
            ensure_schema(connection)
            connection.execute("create table bench_floor (like raw.transactions including all)")
        return _copy_file(
            database,
            rows_csv,
            sql.SQL("copy bench_floor ({}) from stdin with (format csv)")
            .format(_COLUMNS)
            .as_string(),
        )


def row_at_a_time(url: str, path: Path, limit: int) -> float:
    """(d): rows per second of a naive loader (csv, HMAC, one INSERT per row)."""
    key = b"b" * 32
    with psycopg.connect(url) as connection:
        connection.execute(
            "create table bench_rows (line_number int, transaction_date text, branch_name text,"
            " customer_name text, basket text, total_amount numeric(12,2), payment_type text,"
            " card_hash char(64))"
        )
        connection.commit()
        started = time.perf_counter()
        done = 0
        with path.open(newline="") as handle, connection.cursor() as cursor:
            reader = csv.reader(handle)
            next(reader)
            for line_number, (date, branch, name, basket, total, payment, card) in enumerate(
                reader, 2
            ):
                if done == limit:
                    break
                card_hash = (
                    hmac.new(key, card.encode(), hashlib.sha256).hexdigest() if card else None
                )
                cursor.execute(
                    "insert into bench_rows values (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (line_number, date, branch, name, basket, total, payment, card_hash),
                )
                done += 1
        connection.commit()
        return done / (time.perf_counter() - started)


def measure_size(url: str, folder: Path, rows: int, repeats: int) -> SizeFigures:
    path = folder / f"chesterfield_{rows}_13-01-2024_23-59-00.csv"
    synthesise(path, rows)
    try:
        with scratch_database(url) as database:
            copies = [raw_copy(database, path) for _ in range(repeats)]
            unlogged = [raw_copy(database, path, unlogged=True) for _ in range(repeats)]
        rows_csv = folder / "loader_rows.csv"
        loads = [run_loader(url, path, rows_csv if run == 0 else None) for run in range(repeats)]
        for load in loads:
            if load["status"] != "loaded" or int(load["loaded"]) != rows:
                raise RuntimeError(f"the loader did not load the benchmark file: {load}")
        floor = min(server_floor(url, rows_csv) for _ in range(repeats))
        return SizeFigures(
            rows=rows,
            size_mib=path.stat().st_size / (1 << 20),
            copy_seconds=min(copies),
            unlogged_copy_seconds=min(unlogged),
            loader_seconds=min(float(load["seconds"]) for load in loads),
            loader_peak_rss_mib=max(float(load["peak_rss_mib"]) for load in loads),
            floor_seconds=floor,
        )
    finally:
        path.unlink(missing_ok=True)
        (folder / "loader_rows.csv").unlink(missing_ok=True)


def _rows_text(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


def _rate(rate: float) -> str:
    return f"{rate / 1000:,.0f}k rows/s"


def table_rows(small: SizeFigures, large: SizeFigures, naive_rate: float) -> list[BenchRow]:
    """The figures as `make bench` rows."""
    rows: list[BenchRow] = []
    for figures in (large, small):
        size = f"{_rows_text(figures.rows)} rows / {figures.size_mib:.0f} MiB"
        loader = figures.rate(figures.loader_seconds)
        copy = figures.rate(figures.copy_seconds)
        rows.append(
            BenchRow(
                f"loader vs raw COPY, {size}",
                _rate(loader),
                f"raw COPY into a text table {_rate(copy)}"
                f" (unlogged {_rate(figures.rate(figures.unlogged_copy_seconds))})",
                f"{loader / copy:.2f}x (goal >= {RATIO_GOAL})",
            )
        )
    floor = large.rate(large.floor_seconds)
    loader = large.rate(large.loader_seconds)
    rows.append(
        BenchRow(
            f"loader vs the server's floor, {_rows_text(large.rows)} rows",
            _rate(loader),
            f"COPY of the loader's own rows into raw.transactions {_rate(floor)}",
            f"{loader / floor:.2f}x",
        )
    )
    rows.append(
        BenchRow(
            "loader vs a row-at-a-time loader",
            _rate(loader),
            f"csv + HMAC + INSERT per row {naive_rate:,.0f} rows/s",
            f"{loader / naive_rate:.1f}x",
        )
    )
    rows.append(
        BenchRow(
            f"loader peak RSS, {_rows_text(small.rows)} rows",
            f"{small.loader_peak_rss_mib:.0f} MiB",
            f"limit {RSS_LIMIT_MIB:.0f} MiB",
            f"{small.loader_peak_rss_mib / RSS_LIMIT_MIB:.2f}x",
        )
    )
    rows.append(
        BenchRow(
            f"loader peak RSS, {_rows_text(large.rows)} rows",
            f"{large.loader_peak_rss_mib:.0f} MiB",
            f"{small.loader_peak_rss_mib:.0f} MiB at {_rows_text(small.rows)} rows"
            f" (limit {RSS_LIMIT_MIB:.0f} MiB)",
            f"{large.loader_peak_rss_mib / small.loader_peak_rss_mib:.2f}x",
        )
    )
    return rows


def loader_rows(
    url: str | None = None,
    *,
    rows: int = 1_000_000,
    small_rows: int = 250_000,
    row_at_a_time_rows: int = 50_000,
    repeats: int = 3,
) -> list[BenchRow]:
    """Run the benchmark on the stack's server (or `url`) and return its table rows."""
    url = url or load_settings().database_url
    if not url:
        raise ConfigurationError("no database: run `cafe up` or set CAFE_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="cafe-bench-load-") as name:
        folder = Path(name)
        small = measure_size(url, folder, small_rows, repeats)
        large = measure_size(url, folder, rows, repeats)
        naive_path = folder / "row_at_a_time.csv"
        synthesise(naive_path, row_at_a_time_rows)
        with scratch_database(url) as database:
            naive_rate = row_at_a_time(database, naive_path, row_at_a_time_rows)
    return table_rows(small, large, naive_rate)


def print_table(rows: list[BenchRow]) -> None:
    headings = BenchRow("benchmark", "figure", "anchor", "ratio")
    widths = [
        max(len(getattr(row, field)) for row in [headings, *rows])
        for field in ("name", "figure", "anchor", "ratio")
    ]
    for row in [headings, *rows]:
        cells = (row.name, row.figure, row.anchor, row.ratio)
        print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=250_000)
    parser.add_argument("--row-at-a-time-rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print_table(
        loader_rows(
            rows=args.rows,
            small_rows=args.small_rows,
            row_at_a_time_rows=args.row_at_a_time_rows,
            repeats=args.repeats,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
