"""The hostile corpus through the real loader into the real PostgreSQL of the session stack:
every file does what its manifest says, the ledger reconciles, and no card number reaches
any column of any `raw` table."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from loader.hashing import CardKey
from loader.reading import inspect_file
from loader.service import load_path
from loader.writers.postgres import PostgresWarehouse
from tests.fixtures.hostile import generate
from tests.privacy_scan import scan_database

CORPUS = Path(generate.__file__).resolve().parent
MANIFEST: dict[str, dict[str, Any]] = json.loads(generate.MANIFEST.read_text())
KEY = CardKey(b"hostile-corpus-test-key-0123456789", "test-v1")


def test_the_committed_corpus_is_what_the_generator_writes(tmp_path: Path) -> None:
    generate.write(tmp_path)
    written = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    committed = {
        path.name: path.read_bytes()
        for path in CORPUS.iterdir()
        if path.suffix in (".csv", ".json")
    }
    assert written == committed


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_file_facts_match_the_manifest(name: str) -> None:
    expected = MANIFEST[name]
    with (CORPUS / name).open("rb") as stream:
        facts = inspect_file(stream)
    assert facts.encoding == expected["encoding"]
    assert list(facts.unknown_columns) == expected["unknown_columns"]
    if expected["status"] == "refused":
        assert facts.refusal is not None and expected["refusal_contains"] in facts.refusal
    else:
        assert facts.refusal is None


def _ledger(url: str) -> dict[str, tuple[str, int, int, int]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "select source_key, status, rows_read, rows_loaded, rows_rejected"
            " from raw.loaded_files where status <> 'started'"
        ).fetchall()
    return {key: (status, read, loaded, rejected) for key, status, read, loaded, rejected in rows}


def _stored_counts(url: str) -> tuple[Counter[str], dict[str, Counter[str]]]:
    with psycopg.connect(url) as connection:
        loaded: Counter[str] = Counter(
            dict(
                connection.execute(
                    "select source_key, count(*) from raw.transactions group by 1"
                ).fetchall()
            )
        )
        reasons: dict[str, Counter[str]] = {}
        for key, reason in connection.execute("select source_key, reason from raw.rejected_rows"):
            reasons.setdefault(key, Counter())[reason.split(": ", 1)[0]] += 1
    return loaded, reasons


def test_every_corpus_file_does_what_its_manifest_says(fresh_database_url: str) -> None:
    warehouse = PostgresWarehouse(fresh_database_url)
    results = {
        name: load_path(CORPUS / name, name, warehouse=warehouse, key=KEY) for name in MANIFEST
    }
    ledger = _ledger(fresh_database_url)
    loaded, reasons = _stored_counts(fresh_database_url)
    problems: list[str] = []
    for name, expected in sorted(MANIFEST.items()):
        result = results[name]
        want = (
            expected["status"],
            expected["rows_loaded"] + expected["rows_rejected"],
            expected["rows_loaded"],
            expected["rows_rejected"],
        )
        got = (
            result.status.value,
            result.counts.read,
            result.counts.loaded,
            result.counts.rejected,
        )
        if got != want:
            problems.append(f"{name}: result {got}, manifest {want}")
        if ledger.get(name) != want:
            problems.append(f"{name}: ledger {ledger.get(name)}, manifest {want}")
        if loaded.get(name, 0) != expected["rows_loaded"]:
            problems.append(f"{name}: {loaded.get(name, 0)} rows in raw.transactions")
        if dict(reasons.get(name, Counter())) != expected["reason_fields"]:
            problems.append(f"{name}: reasons {dict(reasons.get(name, {}))}")
    assert problems == []
    for status, read, ok, rejected in ledger.values():
        assert read == ok + rejected, status


def test_no_card_number_reaches_any_raw_column(fresh_database_url: str) -> None:
    warehouse = PostgresWarehouse(fresh_database_url)
    for name in MANIFEST:
        load_path(CORPUS / name, name, warehouse=warehouse, key=KEY)
    with psycopg.connect(fresh_database_url) as connection:
        stored = connection.execute("select count(*) from raw.rejected_rows").fetchone()
    assert stored is not None and stored[0] > 50  # the scan has something to look at
    findings = scan_database(
        fresh_database_url,
        ("raw",),
        known_cards=[*generate.CARDS, "4111111111111110"],
        known_values=["Ann 5500", "Bo 3782"],
    )
    assert [str(finding) for finding in findings] == []
