"""infra/dbt-runner/frozen-dbt.py: dbt's own command line, with what importing dbt built
frozen out of the garbage collector (the scheduled build and `cafe` run dbt through it)."""

from __future__ import annotations

import subprocess
import sys

from infra_helpers import INFRA

from cafe.commands.build import dbt_command

FROZEN_DBT = INFRA / "dbt-runner" / "frozen-dbt.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FROZEN_DBT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_it_is_dbts_command_line_with_its_exit_codes() -> None:
    helped = _run("--help")
    assert helped.returncode == 0, helped.stderr
    assert "Usage: dbt" in helped.stdout and "build" in helped.stdout
    unknown = _run("no-such-command")
    assert unknown.returncode == 2
    assert "No such command" in unknown.stderr


def test_what_the_import_built_is_frozen_before_dbt_runs() -> None:
    # The launcher run as a script (runpy), then the collector asked what it froze.
    probe = (
        "import gc, runpy, sys\n"
        f"sys.argv = [{str(FROZEN_DBT)!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_path({str(FROZEN_DBT)!r}, run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    print('exit', stop.code, 'frozen', gc.get_freeze_count())\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    words = completed.stdout.splitlines()[-1].split()
    assert words[:2] == ["exit", "0"], completed.stderr
    assert int(words[words.index("frozen") + 1]) > 50_000


def test_the_cafe_commands_run_dbt_through_it_with_their_own_python() -> None:
    assert dbt_command() == [sys.executable, str(FROZEN_DBT)]
