"""cfn-lint and checkov pass on every template; every checkov skip says why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]
from infra_helpers import INFRA, ROOT, TEMPLATES, checkov_executable


def test_there_are_templates() -> None:
    assert {p.stem for p in TEMPLATES} >= {
        "foundation",
        "network",
        "warehouse",
        "pipeline",
        "dbt-runner",
        "grafana",
    }


def test_cfn_lint_reports_nothing() -> None:
    completed = subprocess.run(
        [
            str(Path(sys.executable).with_name("cfn-lint")),
            "--format",
            "parseable",
            *map(str, TEMPLATES),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    # Exit code 0: no errors, warnings or informational findings.
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.slow
def test_checkov_finds_no_failed_checks() -> None:
    environment = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": ""}
    completed = subprocess.run(
        [
            checkov_executable(),
            "--directory",
            str(INFRA / "templates"),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--output",
            "json",
            "--compact",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        cwd=ROOT,
    )
    report = json.loads(completed.stdout)
    summary = report["summary"]
    failed = [
        (c["check_id"], c["resource"], c["file_path"]) for c in report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0 and not failed, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 50
    assert completed.returncode == 0


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_every_checkov_skip_carries_a_reason(path: Path) -> None:
    template = cfn_yaml.load(str(path))
    for name, resource in template["Resources"].items():
        if not isinstance(resource, dict):
            continue
        skips = resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
        for skip in skips:
            assert skip["id"].startswith("CKV"), name
            assert len(str(skip.get("comment", "")).split()) >= 8, (name, skip["id"])


@pytest.mark.parametrize(
    "script", ["deploy.sh", "destroy.sh", "package.sh", "lib.sh", "dbt-runner/scheduled-build.sh"]
)
def test_shell_scripts_parse(script: str) -> None:
    subprocess.run(["bash", "-n", str(INFRA / script)], check=True)
