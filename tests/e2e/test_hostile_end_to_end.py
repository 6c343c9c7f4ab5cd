"""The hostile corpus from the S3 key to the last mart, log and metric (issue 9's acceptance).

A private stack receives, through the landing bucket, the queue and the Lambda handler
(`cafe ingest`), every file of the hostile corpus plus what only the S3 path can show: an
upper-case `.CSV`, a `.txt`, a card number typed into a file name, and the same export
uploaded again under another name. Then `cafe build` runs. The promises:

* every file is in the ledger with the status its manifest (or the S3 rule) gives, and the
  ledger reconciles with the facts;
* `cafe build` exits 0 and the reporting marts hold the day's trade;
* no card number, in any disguise, is in any table of any schema (raw included), in any log
  (the loader's JSON logs, dbt's logs and artifacts, the PostgreSQL server log, moto's log)
  or in any metric; no customer name is outside `raw`.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cafe import stack as local_stack
from tests.conftest import SAMPLES_DIR, make_stack_dir
from tests.fixtures.hostile import generate
from tests.privacy_scan import json_strings, scan_database, scan_log_files, scan_log_text, scan_text

CORPUS = Path(generate.__file__).resolve().parent
MANIFEST: dict[str, dict[str, Any]] = json.loads(generate.MANIFEST.read_text())
CARD_IN_NAME = "4111.1111.1111.1111"
SAMPLE = "chesterfield_25-08-2021_09-00-00.csv"

pytestmark = pytest.mark.slow


def _cafe(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CAFE_STATE_DIR": str(state),
        "COLUMNS": "200",
        # Everything the Lambda would log and measure goes to stdout, to be scanned.
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
        "POWERTOOLS_METRICS_DISABLED": "false",
    }
    for name in ("CAFE_DATABASE_URL", "CAFE_AWS_ENDPOINT_URL", "CAFE_QUEUE_URL", "CAFE_DBT_TARGET"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "cafe.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def state() -> Iterator[Path]:
    folder = make_stack_dir("cafe-hostile-")
    yield folder
    local_stack.down(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def delivered(state: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Stack up, every file ingested through S3 → SQS → handler, then `cafe build`."""
    exports = tmp_path_factory.mktemp("hostile-exports")
    for name in MANIFEST:
        shutil.copy(CORPUS / name, exports / name)
    shutil.copy(SAMPLES_DIR / SAMPLE, exports / SAMPLE)
    # Only the S3 path can say these: the loader, not a suffix filter, decides.
    upper = "longridge_26-11-2023_09-00-00"
    shutil.copy(SAMPLES_DIR / f"{upper}.csv", exports / f"{upper}.CSV")
    (exports / "notes_01-03-2024_09-00-00.txt").write_text("not an export\n")
    shutil.copy(SAMPLES_DIR / SAMPLE, exports / f"leeds_{CARD_IN_NAME}_01-03-2024_09-00-00.csv")
    shutil.copy(SAMPLES_DIR / SAMPLE, exports / "chesterfield-again_25-08-2021_09-00-00.csv")

    up = _cafe(state, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    files = sorted(str(path) for path in exports.iterdir())
    ingest = _cafe(state, "ingest", *files)
    build = _cafe(state, "build")
    url = str(json.loads((state / "stack.json").read_text())["postgres"]["url"])
    return {"ingest": ingest, "build": build, "url": url}


def _known_cards() -> list[str]:
    """Every card number the delivered files hold: the corpus's, the file name's, and the
    real samples' (most of which fail Luhn, so only this net catches them)."""
    cards = {*generate.CARDS, CARD_IN_NAME}
    for sample in SAMPLES_DIR.glob("*.csv"):
        with sample.open(newline="", encoding="utf-8") as handle:
            cards.update(row["card_number"] for row in csv.DictReader(handle) if row["card_number"])
    return sorted(cards)


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchall()


def _statuses(url: str) -> dict[str, str]:
    rows = _rows(url, "select source_key, status from raw.loaded_files where status <> 'started'")
    return {key.removeprefix("landing/"): status for key, status in rows}


def test_every_file_gets_the_status_its_rule_gives(delivered: dict[str, Any]) -> None:
    statuses = _statuses(delivered["url"])
    for name, expected in MANIFEST.items():
        assert statuses.get(name) == expected["status"], name
    assert statuses["longridge_26-11-2023_09-00-00.CSV"] == "loaded"
    assert statuses["notes_01-03-2024_09-00-00.txt"] == "refused"
    # The same export under two names: whichever the queue hands over first loads, the
    # other is a duplicate naming it.
    copies = (SAMPLE, "chesterfield-again_25-08-2021_09-00-00.csv")
    assert sorted(statuses[name] for name in copies) == ["duplicate", "loaded"]
    [(copied, original)] = _rows(
        delivered["url"],
        "select source_key, duplicate_of from raw.loaded_files where status = 'duplicate'"
        " and source_key like '%chesterfield%'",
    )
    assert {copied, original} == {f"landing/{name}" for name in copies}
    masked = [key for key in statuses if key.startswith("leeds_")]
    assert len(masked) == 1 and statuses[masked[0]] == "refused"
    assert "1111.1111.1111" not in masked[0]
    assert not [
        row
        for row in _rows(delivered["url"], "select status from raw.loaded_files")
        if row[0] == "started"
    ], "an attempt was left open"


def test_the_build_passes_refreshes_the_marts_and_reconciles(delivered: dict[str, Any]) -> None:
    build = delivered["build"]
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-2000:]
    assert "Traceback" not in build.stderr + delivered["ingest"].stderr
    url = delivered["url"]
    [(current_rows, facts)] = _rows(
        url,
        "select (select sum(rows_loaded) from raw.loaded_files where is_current),"
        " (select count(*) from marts.fct_transactions)",
    )
    assert facts == current_rows
    assert _rows(
        url, "select count(*) from raw.loaded_files where rows_read <> rows_loaded + rows_rejected"
    ) == [(0,)]
    # The corpus's trade (branch `Hostile`, 1 March 2024) reached the reporting marts.
    assert _rows(
        url,
        "select count(*) > 0 from reporting.rpt_daily_branch_sales"
        " where branch_name = 'Hostile' and sales_date_local = date '2024-03-01'",
    ) == [(True,)]
    assert _rows(
        url,
        "select count(*) > 0 from reporting.rpt_product_sales_daily where branch_name = 'Hostile'",
    ) == [(True,)]


def _schemas(url: str) -> list[str]:
    return [
        schema
        for (schema,) in _rows(
            url,
            "select schema_name from information_schema.schemata"
            " where schema_name not in ('pg_catalog', 'information_schema', 'pg_toast')"
            " and schema_name not like 'pg_temp%' and schema_name not like 'pg_toast_temp%'",
        )
    ]


def _names(url: str) -> list[str]:
    loaded = {
        name
        for (name,) in _rows(
            url,
            "select distinct customer_name from raw.transactions where customer_name is not null",
        )
    }
    return sorted(loaded | {"Ann Lee"})


def test_no_card_number_in_any_table_and_no_name_outside_raw(delivered: dict[str, Any]) -> None:
    url = delivered["url"]
    schemas = _schemas(url)
    assert {"raw", "staging", "marts", "reporting"} <= set(schemas)
    assert scan_database(url, schemas, known_cards=_known_cards()) == []
    outside_raw = [schema for schema in schemas if schema != "raw"]
    assert scan_database(url, outside_raw, known_values=_names(url)) == []


def test_no_card_number_in_any_log_or_metric(delivered: dict[str, Any], state: Path) -> None:
    cards = _known_cards()
    ingest, build = delivered["ingest"], delivered["build"]
    # The handler's JSON log lines and EMF metrics were written to the ingest's stdout.
    assert '"_aws"' in ingest.stdout, "no EMF metric was printed: the scan would prove nothing"
    assert '"message":"file processed"' in ingest.stdout.replace(" ", "").replace(
        "fileprocessed", "file processed"
    ), "no loader log line was printed: the scan would prove nothing"
    for label, text in (
        ("ingest stdout", ingest.stdout),
        ("ingest stderr", ingest.stderr),
        ("build stdout", build.stdout),
        ("build stderr", build.stderr),
    ):
        assert scan_log_text(text, label, known_cards=cards) == []
    logs = [
        path
        for path in state.rglob("*")
        if path.is_file()
        and path.suffix in (".log", ".json", ".sql", ".txt")
        and "pg/data" not in path.as_posix()
        and path.name != "stack.json"
    ]
    assert any(path.name == "server.log" for path in logs)
    assert any(path.name == "moto.log" for path in logs)
    assert any(path.name == "dbt.log" for path in logs)
    assert any(path.name == "run_results.json" for path in logs)
    # dbt's artifacts are JSON documents of one line: their strings are scanned one by one
    # (a checksum's digits must not join a neighbour's into a false card number).
    documents = [path for path in logs if path.suffix == ".json"]
    for document in documents:
        for number, text in enumerate(json_strings(json.loads(document.read_text()))):
            where = f"{document.name}#{number}"
            assert scan_text(text, where, known_cards=cards) == [], where
    assert scan_log_files([p for p in logs if p not in documents], known_cards=cards) == []
