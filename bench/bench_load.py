"""Loader benchmark: our loader against two anchors on a ~200k-row export.

    python -m bench.bench_load [--rows 200000] [--row-at-a-time-rows 50000]

(a) raw COPY of the file into an unlogged text table (no parsing, validation or hashing):
    the ceiling for getting these bytes into PostgreSQL;
(b) a row-at-a-time loader: csv module, HMAC per row, one INSERT per row, one commit:
    what a naive loader does (timed on the first `--row-at-a-time-rows` rows, as a rate);
(c) our loader (`loader.service.load_path` with the PostgreSQL writer), in a child process
    so that its peak RSS is its own.

Needs the running stack (`cafe up`) or CAFE_DATABASE_URL; works in a scratch database that
it creates and drops.
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
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from loader.errors import ConfigurationError
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

_OURS = """
import json, resource, sys, time
from pathlib import Path
from loader.hashing import CardKey
from loader.service import load_path
from loader.writers.postgres import PostgresWarehouse
path, url = Path(sys.argv[1]), sys.argv[2]
started = time.perf_counter()
key = CardKey(b"b" * 32, "bench")
result = load_path(path, path.name, warehouse=PostgresWarehouse(url), key=key)
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "status": result.status.value, "loaded": result.counts.loaded,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def synthesise(path: Path, rows: int, seed: int = 7) -> None:
    """An export in the real format: CRLF, quoted multi-item baskets, a card pool."""
    rng = random.Random(seed)
    cards = [str(rng.randrange(10**15, 10**16)) for _ in range(5000)]
    start = datetime(2024, 1, 13, 7, 0)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        handle.write(HEADER + "\r\n")
        for index in range(rows):
            items = rng.choices(_ITEMS, k=rng.randint(1, 5))
            basket = ", ".join(f"{name} - {pence / 100:.2f}" for name, pence in items)
            total = sum(pence for _, pence in items) / 100
            card = rng.random() < 0.7
            writer.writerow(
                [
                    (start + timedelta(seconds=index * 3)).strftime("%d/%m/%Y %H:%M"),
                    "Chesterfield",
                    rng.choice(_NAMES),
                    basket,
                    f"{total:.2f}".rstrip("0").rstrip("."),
                    "CARD" if card else "CASH",
                    rng.choice(cards) if card else "",
                ]
            )


def raw_copy(url: str, path: Path) -> float:
    with psycopg.connect(url) as connection:
        connection.execute(
            "create unlogged table bench_raw_copy (date text, location text, name text,"
            " basket text, total text, payment_type text, card_number text)"
        )
        connection.commit()
        started = time.perf_counter()
        with (
            connection.cursor() as cursor,
            path.open("rb") as handle,
            cursor.copy("copy bench_raw_copy from stdin with (format csv, header true)") as copy,
        ):
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        connection.commit()
        return time.perf_counter() - started


def row_at_a_time(url: str, path: Path, limit: int) -> tuple[int, float]:
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
        return done, time.perf_counter() - started


def ours(url: str, path: Path) -> dict[str, float | str | int]:
    output = subprocess.run(
        [sys.executable, "-c", _OURS, str(path), url], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float | str | int] = json.loads(output.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--row-at-a-time-rows", type=int, default=50_000)
    args = parser.parse_args(argv)
    url = load_settings().database_url
    if not url:
        raise ConfigurationError("no database: run `cafe up` or set CAFE_DATABASE_URL")
    scratch = f"cafe_bench_{uuid.uuid4().hex[:8]}"
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(scratch)))
    scratch_url = url.rsplit("/", 1)[0] + f"/{scratch}"
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "chesterfield_13-01-2024_23-59-00.csv"
            synthesise(path, args.rows)
            size_mib = path.stat().st_size / (1 << 20)
            copy_seconds = raw_copy(scratch_url, path)
            naive_rows, naive_seconds = row_at_a_time(scratch_url, path, args.row_at_a_time_rows)
            measured = ours(scratch_url, path)
        ours_seconds = float(measured["seconds"])
        rates = {
            "raw COPY (anchor)": args.rows / copy_seconds,
            "row-at-a-time INSERT + HMAC (anchor)": naive_rows / naive_seconds,
            "cafe loader": int(measured["loaded"]) / ours_seconds,
        }
        print(f"file: {args.rows} rows, {size_mib:.1f} MiB")
        for name, rate in rates.items():
            print(f"  {name:<40} {rate:>12,.0f} rows/s")
        versus_copy = rates["cafe loader"] / rates["raw COPY (anchor)"]
        print(f"  cafe loader / raw COPY        = {versus_copy:.2f}")
        print(
            "  cafe loader / row-at-a-time   = "
            f"{rates['cafe loader'] / rates['row-at-a-time INSERT + HMAC (anchor)']:.1f}x"
        )
        print(f"  cafe loader peak RSS          = {float(measured['peak_rss_mib']):.0f} MiB")
        return 0 if measured["status"] == "loaded" else 1
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(scratch))
            )


if __name__ == "__main__":
    sys.exit(main())
