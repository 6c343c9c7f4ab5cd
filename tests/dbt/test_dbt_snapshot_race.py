"""One snapshot per build: a load that commits while a build runs is in every fact or in none.

Both incremental facts take their file list from `int_build_files`, the ledger read once
at the start of the build. The race is made deterministic with a lock: the test holds
`fct_transactions` while dbt builds, waits until `fct_transaction_items` is committed and
dbt is queued on the lock, commits a new file's load, then lets dbt go on. Had each fact
read the live ledger (as they once did), the transactions would hold the new file and the
items, exploded from baskets before it arrived, would not.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest
from dbt_helpers import assert_dbt_ok, load_files, run_dbt_captured

from cafe.commands.build import dbt_env, dbt_executable_path
from cafe.dbt_project import dbt_project_dir
from cafe.samples import GenerationPlan, iter_generated_files
from loader.settings import Settings

pytestmark = pytest.mark.slow  # dbt builds racing a load

FACTS = ("fct_transactions", "fct_transaction_items")
SELECTION = ("--select", "+fct_transactions", "+fct_transaction_items")
WAIT_SECONDS = 120


def _files_in(connection: psycopg.Connection, fact: str) -> set[str]:
    return {row[0] for row in connection.execute(f"select distinct source_key from marts.{fact}")}


def _dbt_is_waiting_on(connection: psycopg.Connection, relation: str) -> bool:
    row = connection.execute(
        "select count(*) from pg_locks where not granted and relation = %s::regclass",
        (relation,),
    ).fetchone()
    return bool(row and row[0])


def _wait_for(condition: object, what: str, build: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():  # type: ignore[operator]
        if build.poll() is not None:
            raise AssertionError(f"dbt ended before {what}:\n{build.communicate()[0][-4000:]}")
        if time.monotonic() > deadline:
            build.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_load_committed_during_a_build_is_in_both_facts_or_neither(
    stack: Settings, fresh_database_url: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(stack, database_url=fresh_database_url)
    plan = GenerationPlan.for_run(1, 3, date(2024, 6, 3), seed=5)
    first, second, racing = sorted(g.path for g in iter_generated_files(plan, tmp_path))
    load_files(settings, [first])
    assert_dbt_ok(run_dbt_captured(settings, "run", *SELECTION))
    load_files(settings, [second])

    with psycopg.connect(fresh_database_url) as lock_holder:
        lock_holder.execute("lock table marts.fct_transactions in access exclusive mode")
        build = subprocess.Popen(
            [dbt_executable_path(), "run", *SELECTION],
            cwd=dbt_project_dir(),
            env=dbt_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        with psycopg.connect(fresh_database_url, autocommit=True) as watcher:
            _wait_for(
                lambda: (
                    second.name in _files_in(watcher, "fct_transaction_items")
                    and _dbt_is_waiting_on(watcher, "marts.fct_transactions")
                ),
                "fct_transaction_items to commit and fct_transactions to wait",
                build,
            )
            load_files(settings, [racing])  # commits while dbt builds
        lock_holder.commit()  # dbt goes on with fct_transactions
        output, _ = build.communicate(timeout=WAIT_SECONDS)
    assert build.returncode == 0, output[-6000:]

    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        transactions, items = (_files_in(connection, fact) for fact in FACTS)
        current = {
            row[0]
            for row in connection.execute(
                "select source_key from raw.loaded_files where is_current"
            )
        }
    assert racing.name in current
    assert transactions == items == {first.name, second.name}

    # The next build takes the racing file everywhere.
    assert_dbt_ok(run_dbt_captured(settings, "run", *SELECTION))
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        assert all(_files_in(connection, fact) == current for fact in FACTS)
