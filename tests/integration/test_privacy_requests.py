"""Erasure, access requests and name retention on the real PostgreSQL (and the erasure on
the Redshift path, its SQL run by the Data API stand-in of test_loader_redshift).

The warehouse is filled by the loader itself, across a key rotation: a first file hashed
with the old key, a second during the overlap window (both hashes linked), then the old
key retired, so an erasure must follow the link to find the card's first transactions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlfluff

from loader.aws import aws_client
from loader.hashing import CardKey, CardKeys, fingerprint_matches, hash_card
from loader.ledger import Status
from loader.privacy.access import subject_access
from loader.privacy.erasure import forget_card
from loader.privacy.retention import apply_retention
from loader.privacy.store import PostgresStore, RedshiftStore
from loader.schema import ensure_schema
from loader.service import load_path
from loader.settings import Settings
from loader.writers.postgres import PostgresWarehouse, lock_id
from loader.writers.redshift import RedshiftWarehouse
from tests.integration.test_loader_redshift import PostgresDataApi, warehouse_for
from tests.privacy_scan import scan_database

OLD = CardKey(b"privacy-requests-old-key-01234567", "test-v1")
NEW = CardKey(b"privacy-requests-new-key-01234567", "test-v2")
AFTER_RETIREMENT = CardKeys(NEW)
HEADER = "date,location,name,basket,total,payment_type,card_number"
ANN, ANN_NAME = "4111111111111111", "Annabel Quist"
BO, BO_NAME = "5500005555555559", "Bo Ferreira"
GETDATE = (
    "create or replace function getdate() returns timestamp language sql"
    " as $$ select clock_timestamp() at time zone 'UTC' $$"
)


def export(path: Path, lines: list[str]) -> Path:
    path.write_text("\r\n".join([HEADER, *lines]) + "\r\n", newline="")
    return path


def rows(url: str, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(query, params).fetchall()


def fill(warehouse: Any, tmp_path: Path) -> None:
    """Two files across a rotation, refused lines with Ann's card, one from before refused
    lines kept a card hash."""
    before = export(
        tmp_path / "leeds_01-01-2025_18-00-00.csv",
        [
            f"01/01/2025 09:00,Leeds,{ANN_NAME},Regular Latte - 2.15,2.15,CARD,{ANN}",
            f"01/01/2025 09:05,Leeds,{BO_NAME},Large Latte - 2.45,2.45,CARD,{BO}",
            f"01/01/2025 09:10,Leeds,{ANN_NAME},Regular Tea - 1.20,1.20,CASH,{ANN}",
        ],
    )
    during = export(
        tmp_path / "york_01-02-2025_18-00-00.csv",
        [
            f"01/02/2025 10:00,York,{ANN_NAME},Regular Mocha - 2.30,2.30,CARD,{ANN}",
            f"01/02/2025 10:05,York,{BO_NAME},Regular Mocha - 2.30,2.30,CARD,{BO}",
            "01/02/2025 10:10,York,,Regular Tea - 1.20,1.20,CASH,",
        ],
    )
    assert load_path(before, before.name, warehouse=warehouse, key=OLD).status is Status.LOADED
    result = load_path(during, during.name, warehouse=warehouse, key=NEW, link_key=OLD)
    assert result.status is Status.LOADED


def add_legacy_refusal(url: str) -> None:
    """A refused line stored before refused lines kept a card hash: masked text only."""
    with psycopg.connect(url) as connection:
        connection.execute(
            "insert into raw.rejected_rows (source_key, file_checksum, line_number, reason,"
            " raw_line) values ('old.csv', repeat('0', 64), 2, 'total: is empty',"
            " %s), ('old.csv', repeat('0', 64), 3, 'total: is empty', %s)",
            (
                f"01/01/2024 09:00,Leeds,{ANN_NAME},Tea - 1,,CARD,****-****-****-{ANN[-4:]}",
                f"01/01/2024 09:00,Leeds,Someone,Tea - 1,,CARD,***********{ANN[-4:]}",
            ),
        )


def ann_hashes() -> list[str]:
    return [hash_card(OLD, ANN), hash_card(NEW, ANN)]


@pytest.fixture
def filled(fresh_database_url: str, tmp_path: Path) -> str:
    fill(PostgresWarehouse(fresh_database_url), tmp_path)
    add_legacy_refusal(fresh_database_url)
    return fresh_database_url


def sales(url: str) -> list[tuple[Any, ...]]:
    return rows(
        url,
        "select count(*), sum(total_amount), string_agg(basket, '|' order by source_key,"
        " line_number), count(distinct payment_type) from raw.transactions",
    )


def test_forget_unlinks_the_card_everywhere_and_keeps_the_sales(filled: str) -> None:
    url = filled
    sales_before = sales(url)
    assert rows(url, "select count(*) from raw.card_links") == [(2,)]
    # An operator pastes the card into the reason: it is stored masked, like everywhere.
    reason = f"ticket 42: customer asked ({ANN[:4]}-{ANN[4:8]}-{ANN[8:12]}-{ANN[12:]})"
    erasure = forget_card(PostgresStore(url), AFTER_RETIREMENT, ANN, reason=reason)
    # Both of Ann's card payments (one under each key, found through the link), the two
    # refused lines holding her card (one by its hash, one only masked), her link; not the
    # masked line of another card with the same last four digits but another length.
    assert (erasure.counts.transactions, erasure.counts.rejected_rows, erasure.counts.links) == (
        2,
        2,
        1,
    )
    assert sales(url) == sales_before
    assert rows(
        url, "select count(*) from raw.transactions where customer_name = %s", ANN_NAME
    ) == [(0,)]
    assert rows(url, "select count(*) from raw.transactions where card_hash is not null") == [(2,)]
    findings = scan_database(
        url, ("raw",), known_cards=[ANN], known_values=[*ann_hashes(), ANN_NAME]
    )
    assert findings == []
    # Bo is untouched: hashes, names and link.
    assert rows(url, "select count(*) from raw.transactions where customer_name = %s", BO_NAME) == [
        (2,)
    ]
    assert rows(url, "select count(*) from raw.card_links") == [(1,)]
    # Refused lines keep their reason and number (the ledger still reconciles).
    assert rows(url, "select count(*) from raw.rejected_rows where raw_line is null") == [(2,)]
    assert rows(url, "select count(*) from raw.rejected_rows") == [(3,)]
    # The files whose rows changed are marked for the incremental facts.
    assert rows(
        url, "select source_key from raw.loaded_files where rows_revised_at is not null order by 1"
    ) == [("leeds_01-01-2025_18-00-00.csv",), ("york_01-02-2025_18-00-00.csv",)]
    [(action, reason, fingerprint, details)] = rows(
        url, "select action, reason, card_fingerprint, details from raw.privacy_audit"
    )
    assert (action, reason) == ("forget", "ticket 42: customer asked (************1111)")
    assert fingerprint_matches(fingerprint, ANN) and not fingerprint_matches(fingerprint, BO)
    assert "1 earlier pseudonym" in details
    # A second request finds nothing more and says so.
    again = forget_card(PostgresStore(url), AFTER_RETIREMENT, ANN, reason=None)
    assert (again.counts.transactions, again.counts.rejected_rows, again.counts.links) == (0, 0, 0)


def test_subject_access_shows_what_is_held_and_records_the_request(filled: str) -> None:
    url = filled
    report = subject_access(PostgresStore(url), AFTER_RETIREMENT, ANN)
    assert [
        (t.branch_name, t.total_amount, t.customer_name, t.card_key_version)
        for t in report.transactions
    ] == [
        ("Leeds", Decimal("2.15"), ANN_NAME, "test-v1"),
        ("York", Decimal("2.30"), ANN_NAME, "test-v2"),
    ]
    # Only the refused line that carries her card's hash: a masked line of unknown owner is
    # never shown to someone who may not be its owner.
    assert [(r.source_key, r.line_number) for r in report.rejections] == [
        ("leeds_01-01-2025_18-00-00.csv", 4)
    ]
    assert [(link.card_key_version, link.previous_key_version) for link in report.links] == [
        ("test-v2", "test-v1")
    ]
    assert report.past_requests == ()
    records = report.records()
    assert {record["record"] for record in records} == {
        "transaction",
        "refused line",
        "pseudonym link",
    }
    text = repr(records)
    assert ANN not in text and all(card_hash not in text for card_hash in ann_hashes())
    [(action, found, fingerprint)] = rows(
        url, "select action, transactions_affected, card_fingerprint from raw.privacy_audit"
    )
    assert (action, found) == ("subject-access", 2) and fingerprint_matches(fingerprint, ANN)
    forget_card(PostgresStore(url), AFTER_RETIREMENT, ANN, reason="asked")
    after = subject_access(PostgresStore(url), AFTER_RETIREMENT, ANN)
    assert (after.transactions, after.rejections, after.links) == ((), (), ())
    assert [request.action for request in after.past_requests] == ["subject-access", "forget"]


def cafe(
    url: str, key_file: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CAFE_DATABASE_URL": url,
        "CAFE_CARD_KEY_FILE": str(key_file),
        "CAFE_CARD_KEY_VERSION": NEW.version,
    }
    return subprocess.run(
        [sys.executable, "-m", "cafe.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_commands_never_print_the_card_number(filled: str, tmp_path: Path) -> None:
    key_file = tmp_path / "ring.key"
    key_file.write_text(NEW.secret.hex() + "\n")
    out = tmp_path / "access.csv"
    access = cafe(
        filled,
        key_file,
        "subject-access",
        "--card",
        "-",
        "--out",
        str(out),
        stdin=f"{ANN[:4]} {ANN[4:8]} {ANN[8:12]} {ANN[12:]}\n",
    )
    assert access.returncode == 0, access.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert ANN_NAME in out.read_text()
    forget = cafe(filled, key_file, "forget", "--card", "-", "--reason", "by mail", stdin=ANN)
    assert forget.returncode == 0, forget.stderr
    assert "erased: 2 transaction(s)" in " ".join(forget.stdout.split())
    bad = cafe(filled, key_file, "forget", "--card", "12-34")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "12-34" not in bad.stderr
    for result in (access, forget, bad):
        both = result.stdout + result.stderr
        assert ANN not in "".join(character for character in both if character.isdigit())


def test_retention_clears_old_names_keeps_recent_ones_and_is_idempotent(
    fresh_database_url: str, tmp_path: Path
) -> None:
    url = fresh_database_url
    today = datetime.now(UTC)
    old, recent = today - timedelta(days=400), today - timedelta(days=1)
    path = export(
        tmp_path / "leeds_01-01-2025_18-00-00.csv",
        [
            f"{old:%d/%m/%Y} 09:00,Leeds,{ANN_NAME},Regular Latte - 2.15,2.15,CARD,{ANN}",
            f"{recent:%d/%m/%Y} 09:00,Leeds,{BO_NAME},Regular Latte - 2.15,2.15,CARD,{BO}",
            f"{recent:%d/%m/%Y} 09:05,Leeds,{BO_NAME},Regular Tea - 1.20,1.20,CASH,{BO}",
        ],
    )
    load_path(path, path.name, warehouse=PostgresWarehouse(url), key=NEW)
    with psycopg.connect(url) as connection:  # one refused line as if refused long ago
        connection.execute(
            "insert into raw.rejected_rows (source_key, file_checksum, line_number, reason,"
            " raw_line, rejected_at) values ('x.csv', repeat('0', 64), 2, 'total: is empty',"
            " 'an old line with a name', now() - interval '31 days')"
        )
    run = apply_retention(PostgresStore(url), 30)
    assert (run.counts.transactions, run.counts.rejected_rows, run.files_left_busy) == (1, 1, 0)
    assert rows(url, "select customer_name from raw.transactions order by line_number") == [
        (None,),
        (BO_NAME,),
    ]
    assert rows(url, "select source_key, raw_line is null from raw.rejected_rows order by 1") == [
        (path.name, False),
        ("x.csv", True),
    ]
    assert rows(url, "select count(*) from raw.transactions where card_hash is not null") == [(2,)]
    second = apply_retention(PostgresStore(url), 30)
    assert (second.counts.transactions, second.counts.rejected_rows) == (0, 0)
    assert rows(
        url,
        "select action, transactions_affected, rejected_rows_affected from raw.privacy_audit"
        " order by performed_at",
    ) == [("retention", 1, 1), ("retention", 0, 0)]


def test_retention_never_waits_for_a_load_nor_holds_one_up(
    fresh_database_url: str, tmp_path: Path
) -> None:
    url = fresh_database_url
    old = datetime.now(UTC) - timedelta(days=400)
    keys = [f"branch{number}_01-01-2025_18-00-00.csv" for number in range(45)]
    warehouse = PostgresWarehouse(url)
    for number, key in enumerate(keys):
        path = export(
            tmp_path / key,
            [f"{old:%d/%m/%Y} 09:{number:02d},Leeds,{ANN_NAME},Regular Tea - 1.20,1.20,CASH,"],
        )
        load_path(path, key, warehouse=warehouse, key=NEW)
    # A load of one key is in flight: it holds that key's advisory lock.
    busy_key = keys[7]
    holder = psycopg.connect(url, autocommit=True)
    holder.execute("select pg_advisory_lock(%s)", (lock_id(busy_key),))
    try:
        started = time.monotonic()
        run = apply_retention(PostgresStore(url), 30)
        assert time.monotonic() - started < 30
        assert (run.counts.transactions, run.files_left_busy) == (44, 1)
        assert rows(
            url, "select source_key from raw.transactions where customer_name is not null"
        ) == [(busy_key,)]
        # Meanwhile a real load commits while retention runs again: neither waits long.
        loaded: list[Status] = []
        late = export(
            tmp_path / "late_02-01-2025_18-00-00.csv",
            [f"{old:%d/%m/%Y} 10:00,Leeds,{BO_NAME},Regular Tea - 1.20,1.20,CASH,"],
        )
        loader = threading.Thread(
            target=lambda: loaded.append(
                load_path(late, late.name, warehouse=warehouse, key=NEW).status
            )
        )
        loader.start()
        apply_retention(PostgresStore(url), 30)
        loader.join(timeout=60)
        assert loaded == [Status.LOADED]
    finally:
        holder.close()
    final = apply_retention(PostgresStore(url), 30)
    assert final.files_left_busy == 0
    assert rows(url, "select count(*) from raw.transactions where customer_name is not null") == [
        (0,)
    ]
    assert (
        "wait for the next run"
        in rows(
            url,
            "select details from raw.privacy_audit where action = 'retention'"
            " order by performed_at limit 1",
        )[0][0]
    )


# -- the same requests through the Redshift path ---------------------------------------------


@pytest.fixture
def redshift(
    stack: Settings, fresh_database_url: str, tmp_path: Path
) -> Iterator[tuple[RedshiftStore, PostgresDataApi]]:
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        ensure_schema(connection)
        connection.execute(GETDATE)
    data_api = PostgresDataApi(fresh_database_url, aws_client(stack, "s3"), stack.landing_bucket)
    warehouse: RedshiftWarehouse = warehouse_for(data_api)
    fill(warehouse, tmp_path)
    add_legacy_refusal(fresh_database_url)
    yield RedshiftStore(warehouse), data_api


def test_the_redshift_path_forgets_retains_and_answers_the_same(
    redshift: tuple[RedshiftStore, PostgresDataApi], fresh_database_url: str
) -> None:
    store, data_api = redshift
    url = fresh_database_url
    sales_before = sales(url)
    sent_before = len(data_api.sql)
    report = subject_access(store, AFTER_RETIREMENT, ANN)
    assert len(report.transactions) == 2 and len(report.links) == 1
    erasure = forget_card(store, AFTER_RETIREMENT, ANN, reason="ticket 7")
    assert (erasure.counts.transactions, erasure.counts.rejected_rows, erasure.counts.links) == (
        2,
        2,
        1,
    )
    assert sales(url) == sales_before
    assert (
        scan_database(url, ("raw",), known_cards=[ANN], known_values=[*ann_hashes(), ANN_NAME])
        == []
    )
    run = apply_retention(store, 30)  # every sale here is older than 30 days
    assert (run.counts.transactions, run.counts.rejected_rows) == (2, 0)
    assert rows(url, "select count(*) from raw.transactions where customer_name is not null") == [
        (0,)
    ]
    sent = data_api.sql[sent_before:]
    assert any(statement.startswith('lock "raw".loaded_files') for statement in sent)
    for statement in sorted(set(sent)):
        tree = sqlfluff.parse(statement, dialect="redshift")
        assert "unparsable" not in repr(tree), statement
        assert ANN not in statement
