"""Incremental facts end where a full rebuild ends, and a run without new files is a no-op."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import psycopg
from conftest import assert_dbt_ok, load_files, run_dbt_captured

from cafe.samples import GenerationPlan, iter_generated_files
from loader.settings import Settings

FACTS = ("marts.fct_transactions", "marts.fct_transaction_items")
FACT_MODELS = ("+fct_transactions", "+fct_transaction_items")
DROPPED_LINES = 7


def _generate(folder: Path, days: int) -> list[Path]:
    plan = GenerationPlan.for_run(2, days, date(2024, 5, 6), seed=3)
    return sorted(generated.path for generated in iter_generated_files(plan, folder))


def _corrected_reexport(original: Path, folder: Path) -> Path:
    """The same export sent again with its last lines removed (a new file version)."""
    folder.mkdir()
    lines = original.read_bytes().splitlines(keepends=True)
    corrected = folder / original.name
    corrected.write_bytes(b"".join(lines[:-DROPPED_LINES]))
    return corrected


def _build_facts(settings: Settings, *extra: str) -> None:
    assert_dbt_ok(run_dbt_captured(settings, "run", "--select", *FACT_MODELS, *extra))


def _current_transaction_id(connection: psycopg.Connection) -> int:
    row = connection.execute("select txid_current()").fetchone()
    assert row is not None
    return int(row[0])


def _fingerprint(connection: psycopg.Connection, relation: str) -> tuple[int, str]:
    row = connection.execute(
        f"select count(*), coalesce(md5(string_agg(md5(t::text), '' order by md5(t::text))), '')"
        f" from {relation} as t"
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def test_incremental_equals_full_refresh(
    stack: Settings, fresh_database_url: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(stack, database_url=fresh_database_url)
    all_days = _generate(tmp_path / "all", days=3)
    first_two_days = [path for path in all_days if "08-05-2024" not in path.name]
    third_day = [path for path in all_days if "08-05-2024" in path.name]
    assert first_two_days and third_day

    load_files(settings, first_two_days)
    _build_facts(settings)

    replaced = first_two_days[0]
    load_files(settings, [*third_day, _corrected_reexport(replaced, tmp_path / "corrected")])
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        before_increment = _current_transaction_id(connection)
    _build_facts(settings)

    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        status = connection.execute(
            "select status from raw.loaded_files where source_key = %s and is_current",
            (replaced.name,),
        ).fetchone()
        assert status == ("replaced",)
        for relation in FACTS:
            connection.execute(f"create table {relation}_incremental as select * from {relation}")
        incremental_rows = _fingerprint(connection, FACTS[0])[0]
        rewritten = connection.execute(
            "select distinct source_key from marts.fct_transactions"
            " where xmin::text::bigint > %s order by 1",
            (before_increment,),
        ).fetchall()
        # Only the new day's files and the corrected file were rebuilt, not the untouched ones.
        assert [row[0] for row in rewritten] == sorted(
            [replaced.name, *(path.name for path in third_day)]
        )

    _build_facts(settings, "--full-refresh")

    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        for relation in FACTS:
            snapshot = f"{relation}_incremental"
            for left, right in ((relation, snapshot), (snapshot, relation)):
                difference = f"select * from {left} except all select * from {right}"
                extra = connection.execute(f"select count(*) from ({difference}) d").fetchone()
                assert extra == (0,), f"{left} has rows {right} lacks"
        ledger = connection.execute(
            "select sum(rows_loaded) from raw.loaded_files where is_current"
        ).fetchone()
        assert ledger == (incremental_rows,)
        replaced_rows = connection.execute(
            "select count(*) from marts.fct_transactions where source_key = %s",
            (replaced.name,),
        ).fetchone()
        original_lines = len(replaced.read_bytes().splitlines()) - 1  # header
        assert replaced_rows == (original_lines - DROPPED_LINES,)
        before = [_fingerprint(connection, relation) for relation in FACTS]
        before_rerun = _current_transaction_id(connection)

    # Nothing new in the ledger: an incremental run must neither change nor rewrite a row.
    _build_facts(settings)

    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        assert [_fingerprint(connection, relation) for relation in FACTS] == before
        for relation in FACTS:
            touched = connection.execute(
                f"select count(*) from {relation} where xmin::text::bigint > %s",
                (before_rerun,),
            ).fetchone()
            assert touched == (0,), f"an incremental run without new files rewrote {relation}"
