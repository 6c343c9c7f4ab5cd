"""Paths, tools and the artefact build shared by the infrastructure tests.

These live here rather than in conftest.py so that each test module imports exactly what
it uses. The Lambda build and the runtime's own libraries are cached per test process:
each is made once per session.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TEMPLATES = sorted((INFRA / "templates").glob("*.yaml"))


def load_module(name: str, path: Path) -> ModuleType:
    """Import one of infra/'s scripts (infra/ is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def package_module() -> ModuleType:
    return load_module("cafe_infra_package", INFRA / "package.py")


def bootstrap_module() -> ModuleType:
    return load_module("cafe_infra_bootstrap", INFRA / "bootstrap_warehouse.py")


def load_templates() -> dict[str, dict[str, Any]]:
    """Every template by file stem, parsed with cfn-lint's CloudFormation-aware loader."""
    return {path.stem: cfn_yaml.load(str(path)) for path in TEMPLATES}


@functools.cache
def built_lambda_artefact() -> Any:
    """The Lambda artefact, built once per test process by the real packaging code."""
    out = Path(tempfile.mkdtemp(prefix="cafe-lambda-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    return package_module().build_lambda(out)


@functools.cache
def lambda_python() -> Path:
    """An interpreter of the Lambda runtime's Python version (one pyenv built, or one on
    PATH that really runs: a pyenv shim may not), else the running one (the artefact's
    wheels are still the runtime's)."""
    version = package_module().LAMBDA_PYTHON
    candidates = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    on_path = shutil.which(f"python{version}")
    for candidate in [*reversed(candidates), *([Path(on_path)] if on_path else [])]:
        answered = subprocess.run(
            [str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if answered.returncode == 0 and answered.stdout.strip() == version:
            return candidate
    return Path(sys.executable)


@functools.cache
def lambda_runtime_libraries() -> Path:
    """What the Lambda runtime puts on sys.path after the function's code (/var/runtime):
    boto3 and botocore, at the versions constraints.txt pins, for the runtime's Python."""
    package = package_module()
    out = Path(tempfile.mkdtemp(prefix="cafe-lambda-runtime-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "install",
            "--quiet",
            "--no-compile",
            "--target",
            str(out),
            "--python-version",
            package.LAMBDA_PYTHON,
            "--only-binary=:all:",
            "--constraint",
            str(ROOT / "constraints.txt"),
            *sorted(package.RUNTIME_PROVIDED),
        ],
        check=True,
        capture_output=True,
    )
    return out


def checkov_executable() -> str:
    """The tools venv's checkov (make setup), else one on PATH; neither is a failure."""
    local = ROOT / ".venv-tools" / "bin" / "checkov"
    if local.exists():
        return str(local)
    found = shutil.which("checkov")
    if found is None:
        pytest.fail("checkov not found: run `make setup` (it installs .venv-tools/bin/checkov)")
    return found
