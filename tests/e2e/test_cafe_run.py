"""`cafe run` (what `make run` calls) end to end, in a private state folder.

It starts its own stack, so it proves the whole quickstart: generated files through the
landing bucket, queue and handler, dbt build, docs and report, and a summary that
reconciles. A second run must load nothing twice.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cafe import stack as local_stack
from cafe.commands.build import STATIC_DOCS
from tests.conftest import make_stack_dir

pytestmark = pytest.mark.slow  # a stack of its own, cafe run twice (dbt build, docs, report)


def _cafe(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAFE_STATE_DIR": str(state), "COLUMNS": "160"}
    for name in ("CAFE_DATABASE_URL", "CAFE_AWS_ENDPOINT_URL", "CAFE_QUEUE_URL"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "cafe.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


@pytest.fixture(scope="module")
def run_state() -> Iterator[Path]:
    state = make_stack_dir("cafe-run-")
    yield state
    local_stack.down(state)
    shutil.rmtree(state, ignore_errors=True)


def test_cafe_run_twice_loads_once_and_reconciles(run_state: Path) -> None:
    args = ("run", "--branches", "2", "--days", "3", "--start", "2024-03-28")
    first = _cafe(run_state, *args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "reconciled" in first.stdout and "NOT reconciled" not in first.stdout
    assert (run_state / "report" / "index.html").exists()
    assert "Traceback" not in first.stderr
    # The docs come from the build's manifest (`--no-compile`), compiled SQL included.
    fact = _docs_node(run_state / "dbt" / "target" / STATIC_DOCS, "model.cafe_elt.fct_transactions")
    assert "{{" not in fact["compiled_code"] and "select" in fact["compiled_code"]

    state_url = _state_url(run_state)
    with psycopg.connect(state_url) as conn:
        loaded = conn.execute(
            "select count(*), sum(rows_loaded) from raw.loaded_files where is_current"
        ).fetchone()
    assert loaded is not None and loaded[0] == 6  # 2 branches x 3 days

    second = _cafe(run_state, *args)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    with psycopg.connect(state_url) as conn:
        statuses = dict(
            conn.execute("select status, count(*) from raw.loaded_files group by status")
        )
        facts = conn.execute("select count(*) from marts.fct_transactions").fetchone()
    assert statuses.get("duplicate") == 6
    assert facts is not None and facts[0] == loaded[1]
    assert re.search(r"reconciled", second.stdout)


def _docs_node(site: Path, unique_id: str) -> dict[str, Any]:
    """A node of the manifest that the single-file docs site embeds as JSON text."""
    text = site.read_text(encoding="utf-8")
    start = text.index("{", text.index(f'"{unique_id}": {{'))
    node, _ = json.JSONDecoder().raw_decode(text, start)
    assert isinstance(node, dict)
    return node


def _state_url(state: Path) -> str:
    return str(json.loads((state / "stack.json").read_text())["postgres"]["url"])
