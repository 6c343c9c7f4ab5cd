"""The fast path on the real PostgreSQL: a file of many blocks, sent by the COPY's own
sending thread while later blocks are parsed, loads whole and exactly as the rule book
reads it; a server error in the middle of the COPY reaches the load (recorded as failed,
nothing half-written) instead of being lost in the sending thread."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import psycopg

from bench.bench_load import synthesise
from loader.hashing import CardKey
from loader.ledger import Status
from loader.schema import ensure_schema
from loader.service import load_path
from loader.writers.postgres import PostgresWarehouse

KEY = CardKey(b"speed-test-key-0123456789abcdefgh", "test-v1")
ROWS = 30_000  # about 5 MiB: several blocks, more than the sending queue holds


def test_a_file_of_many_blocks_loads_whole_with_every_card_hashed(
    fresh_database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "chesterfield_13-01-2024_23-59-00.csv"
    synthesise(path, ROWS)
    result = load_path(path, path.name, warehouse=PostgresWarehouse(fresh_database_url), key=KEY)
    assert result.status is Status.LOADED
    assert (result.counts.read, result.counts.loaded) == (ROWS, ROWS)
    with psycopg.connect(fresh_database_url) as connection:
        lines = connection.execute(
            "select min(line_number), max(line_number), count(distinct line_number)"
            " from raw.transactions"
        ).fetchone()
        assert lines == (2, ROWS + 1, ROWS)
        sample = connection.execute(
            "select line_number, card_hash from raw.transactions"
            " where card_hash is not null order by line_number limit 50"
        ).fetchall()
    by_line: dict[object, object] = dict(sample)
    with path.open(newline="") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line_number in by_line:
                card = line.rstrip("\r\n").rsplit(",", 1)[1]
                expected = hmac.new(KEY.secret, card.encode(), hashlib.sha256).hexdigest()
                assert by_line[line_number] == expected


def test_a_server_error_in_the_middle_of_the_copy_fails_the_load_whole(
    fresh_database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "chesterfield_14-01-2024_23-59-00.csv"
    synthesise(path, ROWS)
    warehouse = PostgresWarehouse(fresh_database_url)
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        ensure_schema(connection)
        # Late rows break a rule the server holds: the COPY fails after many blocks were sent.
        connection.execute(
            "alter table raw.transactions add constraint speed_test_early_lines"
            f" check (line_number < {ROWS - 100})"
        )
    try:
        result = load_path(path, path.name, warehouse=warehouse, key=KEY)
        assert result.status is Status.FAILED
        assert "speed_test_early_lines" in (result.error_text or "")
        with psycopg.connect(fresh_database_url) as connection:
            assert connection.execute("select count(*) from raw.transactions").fetchone() == (0,)
            statuses = connection.execute(
                "select status from raw.loaded_files where source_key = %s", (path.name,)
            ).fetchall()
            assert sorted(status for (status,) in statuses) == ["failed"]
    finally:
        with psycopg.connect(fresh_database_url, autocommit=True) as connection:
            connection.execute(
                "alter table raw.transactions drop constraint if exists speed_test_early_lines"
            )
