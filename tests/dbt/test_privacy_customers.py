"""Issue 13's acceptance on a real local stack of its own (`cafe up` in a private folder):
files arrive the production way (`cafe ingest`: S3, SQS, the Lambda handler), keys rotate
and retire with the command line, and `cafe build` builds the marts.

* Rotation with continuity: Ann visits before `cafe rotate-key` and again inside the
  window, so she is one returning customer; Bo comes back only after `cafe retire-key`, so
  he counts as a new customer; the retired key leaves no copy anywhere in the stack's
  folder (key ring, files, stack state, the database's files).
* Erasure: after `cafe forget --card -` and `cafe build`, revenue, counts and products are
  unchanged, there is one customer fewer, no hash of the card and no name of those rows is
  anywhere in the warehouse, the erasure is recorded, and the command never printed the
  number.
"""

from __future__ import annotations

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
from loader.hashing import CardKey, hash_card
from loader.settings import read_state
from tests.conftest import make_stack_dir
from tests.privacy_scan import scan_database

HEADER = "date,location,name,basket,total,payment_type,card_number"
ANN, ANN_NAME = "4111111111111111", "Annabel Quist"
BO, BO_NAME = "5500005555555559", "Bo Ferreira"
CY, CY_NAME = "4012888888881881", "Cyrus Demir"
SCHEMAS = ("raw", "staging", "intermediate", "marts", "reporting", "test_failures")

pytestmark = pytest.mark.slow


def cafe(root: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAFE_STATE_DIR": str(root), "COLUMNS": "160"}
    for name in (
        "CAFE_DATABASE_URL",
        "CAFE_AWS_ENDPOINT_URL",
        "CAFE_QUEUE_URL",
        "CAFE_CARD_KEY_FILE",
    ):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "cafe.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result


def export(folder: Path, day: str, lines: list[tuple[str, str, str]]) -> Path:
    """One Leeds export of `day` (dd-mm-YYYY): (name, card, time) per line, a latte each."""
    path = folder / f"leeds_{day}_18-00-00.csv"
    date = day.replace("-", "/")
    rows = [
        f"{date} {time},Leeds,{name},Regular Latte - 2.15,2.15,CARD,{card}"
        for name, card, time in lines
    ]
    rows.append(f"{date} 12:00,Leeds,,Large Tea - 1.40,1.40,CASH,")
    path.write_text("\r\n".join([HEADER, *rows]) + "\r\n", newline="")
    return path


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchall()


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    folder = make_stack_dir("cafe-privacy-")
    try:
        yield folder
    finally:
        local_stack.down(folder)
        shutil.rmtree(folder, ignore_errors=True)


def test_rotation_keeps_returning_customers_and_forget_unlinks_one(
    root: Path, tmp_path: Path
) -> None:
    cafe(root, "up")
    url = str(read_state(root / "stack.json")["postgres"]["url"])
    key_file = root / "card_hash.key"
    old = CardKey(bytes.fromhex(key_file.read_text().strip()), "local-v1")

    # Week of Monday 6 January 2025: three new customers.
    cafe(
        root,
        "ingest",
        str(
            export(
                tmp_path,
                "06-01-2025",
                [
                    (ANN_NAME, ANN, "09:00"),
                    (BO_NAME, BO, "09:10"),
                    (CY_NAME, CY, "09:20"),
                ],
            )
        ),
    )
    cafe(root, "rotate-key", "--overlap-days", "90")
    ring = json.loads(key_file.read_text())
    new = CardKey(bytes.fromhex(ring["keys"]["local-v2"]), "local-v2")
    # Week of 13 January, inside the window: Ann comes back.
    cafe(root, "ingest", str(export(tmp_path, "13-01-2025", [(ANN_NAME, ANN, "09:00")])))
    cafe(root, "retire-key", "local-v1")
    # Week of 20 January, after the old key is gone: Bo comes back.
    cafe(root, "ingest", str(export(tmp_path, "20-01-2025", [(BO_NAME, BO, "09:00")])))

    # No copy of the old key anywhere under the stack's folder.
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            content = path.read_bytes()
            assert old.secret.hex().encode() not in content, path
            assert old.secret not in content, path
    assert "local-v1" not in json.loads(key_file.read_text())["keys"]

    cafe(root, "build")
    assert rows(
        url,
        "select week_start_local::text, new_customers, returning_customers"
        " from reporting.rpt_customers_weekly order by 1",
    ) == [("2025-01-06", 3, 0), ("2025-01-13", 0, 1), ("2025-01-20", 1, 0)]
    assert rows(
        url,
        "select cohort_week_local::text, weeks_since_first, cohort_size, active_customers"
        " from reporting.rpt_cohort_retention order by 1, 2",
    ) == [("2025-01-06", 0, 3, 3), ("2025-01-06", 1, 3, 1), ("2025-01-20", 0, 1, 1)]
    assert rows(url, "select count(*) from marts.dim_customers") == [(4,)]
    [(ann_visits,)] = rows(
        url,
        f"select visit_count from marts.dim_customers where customer_key = '{hash_card(old, ANN)}'",
    )
    assert ann_visits == 2  # both visits, under two keys, are one customer

    def business() -> list[tuple[Any, ...]]:
        return rows(
            url,
            "select (select count(*) from marts.fct_transactions),"
            " (select sum(total_amount) from marts.fct_transactions),"
            " (select sum(revenue) from reporting.rpt_daily_branch_sales),"
            " (select string_agg(product_key || ':' || quantity, ',' order by"
            "  transaction_id, product_key) from marts.fct_transaction_items)",
        )

    before = business()
    forgotten = cafe(
        root, "forget", "--card", "-", "--reason", "ticket 13", stdin=f"{ANN[:8]} {ANN[8:]}\n"
    )
    printed = forgotten.stdout + forgotten.stderr
    assert ANN not in "".join(character for character in printed if character.isdigit())
    cafe(root, "build")

    assert business() == before  # sales are the business's records
    assert rows(url, "select count(*) from marts.dim_customers") == [(3,)]
    assert rows(
        url,
        "select week_start_local::text, new_customers, returning_customers"
        " from reporting.rpt_customers_weekly order by 1",
    ) == [("2025-01-06", 2, 0), ("2025-01-20", 1, 0)]
    assert rows(
        url,
        "select count(*) from marts.fct_transactions where customer_key is null"
        " and payment_method = 'Card'",
    ) == [(2,)]
    ann_hashes = [hash_card(old, ANN), hash_card(new, ANN)]
    findings = scan_database(
        url, SCHEMAS, known_cards=[ANN, BO, CY], known_values=[*ann_hashes, ANN_NAME]
    )
    assert findings == [], [str(finding) for finding in findings]
    assert rows(
        url,
        "select action, transactions_affected, links_affected, reason"
        " from raw.privacy_audit where action = 'forget'",
    ) == [("forget", 2, 1, "ticket 13")]
    assert [
        action
        for (action,) in rows(url, "select action from raw.privacy_audit order by performed_at")
    ] == [
        "rotate-key",
        "retire-key",
        "forget",
    ]
