"""Copies and stale versions on the real PostgreSQL: what the ledger decides, and that
nothing is loaded twice or replaced by something older (issue 9 point 7)."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from loader.hashing import CardKey
from loader.ledger import LoadResult, SourceFacts, Status
from loader.service import load_file, load_path
from loader.writers.postgres import PostgresWarehouse

KEY = CardKey(b"ledger-versions-key-0123456789abcd", "test-v1")
HEADER = "date,location,name,basket,total,payment_type,card_number"


def export(
    path: Path, branch: str = "Chesterfield", lines: int = 3, mtime: int | None = None
) -> Path:
    rows = [
        f"25/08/2021 {9 + minute // 60:02d}:{minute % 60:02d},{branch},Ann Lee,"
        '"Large Latte - 2.45, Regular Mocha - 2.30",'
        "4.75,CARD,4111111111111111"
        for minute in range(lines)
    ]
    path.write_text("\r\n".join([HEADER, *rows]) + "\r\n", newline="")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def load(url: str, path: Path, key: str | None = None) -> LoadResult:
    return load_path(path, key or path.name, warehouse=PostgresWarehouse(url), key=KEY)


def rows(url: str, query: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(query, params).fetchall()


def test_the_same_export_under_another_name_is_a_duplicate_of_it(
    fresh_database_url: str, tmp_path: Path
) -> None:
    original = export(tmp_path / "chesterfield_25-08-2021_09-00-00.csv")
    assert load(fresh_database_url, original).status is Status.LOADED
    result = load(fresh_database_url, original, "copy of chesterfield.csv")
    assert (result.status, result.duplicate_of, result.counts.read) == (
        Status.DUPLICATE,
        original.name,
        0,
    )
    assert rows(fresh_database_url, "select distinct source_key from raw.transactions") == [
        (original.name,)
    ]
    assert rows(
        fresh_database_url,
        "select status, is_current, duplicate_of, rows_read, finished_at is not null"
        " from raw.loaded_files where source_key = %s",
        "copy of chesterfield.csv",
    ) == [("duplicate", False, original.name, 0, True)]


def test_a_redelivery_is_a_duplicate_of_its_own_key(
    fresh_database_url: str, tmp_path: Path
) -> None:
    path = export(tmp_path / "ludlow_01-02-2024_09-00-00.csv", "Ludlow")
    load(fresh_database_url, path)
    again = load(fresh_database_url, path)
    assert (again.status, again.duplicate_of) == (Status.DUPLICATE, path.name)


def test_copies_loading_at_once_load_once(fresh_database_url: str, tmp_path: Path) -> None:
    path = export(tmp_path / "whitby_01-02-2024_09-00-00.csv", "Whitby", lines=200)
    keys = [f"landing/{uuid.uuid4().hex[:8]}/whitby_01-02-2024_09-00-00.csv" for _ in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda key: load(fresh_database_url, path, key), keys))
    statuses = sorted(result.status.value for result in results)
    assert statuses == ["duplicate"] * 5 + ["loaded"], results
    [loaded] = [result for result in results if result.status is Status.LOADED]
    assert {r.duplicate_of for r in results if r.status is Status.DUPLICATE} == {loaded.source_key}
    assert rows(fresh_database_url, "select count(*) from raw.transactions") == [(200,)]


def test_an_older_version_arriving_late_is_stale_and_replaces_nothing(
    fresh_database_url: str, tmp_path: Path
) -> None:
    name = "leeds_03-02-2024_09-00-00.csv"
    now = int(datetime.now(UTC).timestamp())
    original = export(tmp_path / "original.csv", "Leeds", 5, now - 3600)
    correction = export(tmp_path / "correction.csv", "Leeds", 3, now)
    assert load(fresh_database_url, correction, name).status is Status.LOADED
    late = load(fresh_database_url, original, name)
    assert (late.status, late.duplicate_of, late.counts.loaded) == (Status.STALE, None, 0)
    # The correction's rows stay, and only they.
    assert rows(
        fresh_database_url,
        "select count(*), count(*) filter (where t.file_checksum = f.file_checksum)"
        " from raw.transactions t cross join raw.loaded_files f where f.is_current",
    ) == [(3, 3)]
    ledger = rows(
        fresh_database_url,
        "select status, is_current, source_modified_at from raw.loaded_files order by started_at",
    )
    assert [row[:2] for row in ledger] == [("loaded", True), ("stale", False)]
    assert ledger[0][2] == datetime.fromtimestamp(now, UTC)
    assert ledger[1][2] == datetime.fromtimestamp(now - 3600, UTC)
    # A newer correction still replaces.
    newer = export(tmp_path / "v3.csv", "Leeds", 2, now + 60)
    assert load(fresh_database_url, newer, name).status is Status.REPLACED


def test_the_sequencer_orders_versions_before_the_clock(
    fresh_database_url: str, tmp_path: Path
) -> None:
    warehouse = PostgresWarehouse(fresh_database_url)
    key = "landing/ripon_04-02-2024_09-00-00.csv"
    older = export(tmp_path / "older.csv", "Ripon", 4)
    newer = export(tmp_path / "newer.csv", "Ripon", 2)
    same_second = datetime(2024, 2, 4, 9, 5, tzinfo=UTC)

    def arrive(path: Path, sequencer: str, modified_at: datetime) -> LoadResult:
        with path.open("rb") as stream:
            source = SourceFacts(modified_at=modified_at, sequencer=sequencer, version_id="v")
            return load_file(stream, key, warehouse=warehouse, key=KEY, source=source)

    # Uploaded in the same second: only the sequencer tells them apart (S3 pads it with
    # zeros on the left to compare; a longer sequencer is not necessarily a later one).
    assert arrive(newer, "0055AED6DCD90281E6", same_second).status is Status.LOADED
    assert arrive(older, "55AED6DCD90281E5", same_second).status is Status.STALE
    # The sequencer wins over a clock that says otherwise.
    assert arrive(older, "0055AED6DCD90281E5", same_second + timedelta(hours=1)).status is (
        Status.STALE
    )
    assert rows(
        fresh_database_url,
        "select source_version from raw.loaded_files where is_current",
    ) == [("sequencer=0055AED6DCD90281E6 version=v",)]


def test_the_ledger_keeps_the_encoding_the_header_and_the_drift(
    fresh_database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "whitby_05-02-2024_09-00-00.csv"
    header = "Date,Location,Name,Basket,Total,Payment_Type,Card_Number,Tip,Till"
    line = '05/02/2024 09:00,Whitby,Ann,"Large Latte - 2.45",2.45,CASH,,0.50,3'
    path.write_bytes(("\r\n".join([header, line]) + "\r\n").encode("utf-16"))
    result = load(fresh_database_url, path)
    assert (result.status, result.counts.loaded) == (Status.LOADED, 1)
    assert rows(
        fresh_database_url,
        "select file_encoding, file_header, unknown_columns from raw.loaded_files",
    ) == [("utf-16-le", header, "Tip,Till")]
    plain = export(tmp_path / "ripon_05-02-2024_09-00-00.csv", "Ripon")
    load(fresh_database_url, plain)
    assert rows(
        fresh_database_url,
        "select file_encoding, file_header, unknown_columns from raw.loaded_files"
        " where source_key = %s",
        plain.name,
    ) == [("utf-8", HEADER, None)]
