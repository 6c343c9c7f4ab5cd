"""infra/dbt-runner/scheduled-build.sh: what the scheduled build runs, keeps and publishes.

dbt against Redshift and S3 cannot run here: a stand-in `python3` (the script runs dbt as
`python3 frozen-dbt.py ARGS`) writes the files dbt writes into target/ (and overwrites
run_results.json on every command, as dbt does), and a stand-in `aws` records the uploads.
The script itself runs unchanged.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from infra_helpers import INFRA

SCRIPT = INFRA / "dbt-runner" / "scheduled-build.sh"

FROZEN_DBT = SCRIPT.with_name("frozen-dbt.py")

FAKE_PYTHON_RUNNING_DBT = r"""#!/bin/sh
if [ "$1" != "$FROZEN_DBT" ]; then echo "python3 was asked to run $1" >&2; exit 97; fi
shift
echo "$*" >> "$CALLS"
mkdir -p target
case "$*" in
  --version) echo "Core: 1.11" ;;
  "source freshness"*)
    echo '{"results": "freshness"}' > target/sources.json
    exit "${FRESHNESS_EXIT:-0}" ;;
  build*)
    echo '{"nodes": "manifest"}' > target/manifest.json
    echo '{"results": "build"}' > target/run_results.json
    exit "${BUILD_EXIT:-0}" ;;
  "docs generate"*)
    echo '{"results": "docs"}' > target/run_results.json
    echo '{"nodes": "catalog"}' > target/catalog.json
    echo '<html>docs</html>' > target/static_index.html ;;
esac
"""

FAKE_AWS = """#!/bin/sh
echo "aws $*" >> "$CALLS"
"""


class Runner:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "dbt_project").mkdir()
        self.bin = root / "bin"
        self.bin.mkdir()
        for name, text in (("python3", FAKE_PYTHON_RUNNING_DBT), ("aws", FAKE_AWS)):
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        self.calls = root / "calls.log"
        self.artifacts = root / "artifacts"

    def run(self, step: str, **settings: str) -> subprocess.CompletedProcess[str]:
        self.calls.write_text("")
        return subprocess.run(
            ["bash", str(SCRIPT), step],
            cwd=self.root,
            env={
                "PATH": f"{self.bin}:/usr/bin:/bin",
                "CALLS": str(self.calls),
                "FROZEN_DBT": str(FROZEN_DBT),
                "CAFE_DBT_ARTIFACTS_DIR": str(self.artifacts),
                "CAFE_DBT_ARTIFACTS_URI": "s3://deploy-bucket/dbt/prod",
                "CODEBUILD_BUILD_NUMBER": "42",
                **settings,
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def lines(self) -> list[str]:
        return self.calls.read_text().splitlines()


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def test_freshness_then_build_then_docs_each_artifact_kept_as_written(runner: Runner) -> None:
    completed = runner.run("build")
    assert completed.returncode == 0, completed.stderr
    assert runner.lines() == [
        "--version",
        "source freshness --target prod --log-level-file warn",
        "build --target prod --selector scheduled_build --log-level-file warn",
        "docs generate --target prod --static --no-compile --log-level-file warn",
    ]
    kept = {p.name: p.read_text() for p in runner.artifacts.iterdir()}
    assert set(kept) == {
        "sources.json",
        "manifest.json",
        "run_results.json",
        "catalog.json",
        "static_index.html",
    }
    # docs generate overwrote target/run_results.json; the build's was kept before that.
    assert json.loads(kept["run_results.json"]) == {"results": "build"}


def test_a_late_source_is_reported_and_the_build_still_runs(runner: Runner) -> None:
    completed = runner.run("build", FRESHNESS_EXIT="1")
    assert completed.returncode == 0
    assert "build --target prod --selector scheduled_build --log-level-file warn" in runner.lines()
    assert "source freshness failed (exit 1)" in completed.stderr
    assert (runner.artifacts / "sources.json").exists()


def test_the_weekly_override_builds_with_full_refresh(runner: Runner) -> None:
    runner.run("build", CAFE_DBT_FULL_REFRESH="true")
    assert (
        "build --target prod --selector scheduled_build --log-level-file warn --full-refresh"
        in runner.lines()
    )


def test_a_failed_build_fails_the_step_but_keeps_its_results(runner: Runner) -> None:
    completed = runner.run("build", BUILD_EXIT="1")
    assert completed.returncode == 1
    assert json.loads((runner.artifacts / "run_results.json").read_text()) == {"results": "build"}


def uploads(runner: Runner) -> list[tuple[str, str]]:
    found = []
    for line in runner.lines():
        words = line.split()
        assert words[:3] == ["aws", "s3", "cp"], line
        found.append((Path(words[-2]).name, words[-1]))
    return found


def test_a_good_build_is_published_dated_and_as_latest(runner: Runner) -> None:
    runner.run("build")
    completed = runner.run("publish", CODEBUILD_BUILD_SUCCEEDING="1")
    assert completed.returncode == 0, completed.stderr
    copied = uploads(runner)
    dated = [d for _, d in copied if "/runs/" in d]
    assert len(dated) == 5
    (run,) = {d.rsplit("/", 1)[0] for d in dated}
    assert re.fullmatch(r"s3://deploy-bucket/dbt/prod/runs/\d{4}-\d\d-\d\dT\d{6}Z-42", run)
    latest = {name: d for name, d in copied if "/latest/" in d}
    assert latest == {
        name: f"s3://deploy-bucket/dbt/prod/latest/{name}"
        for name in (
            "sources.json",
            "manifest.json",
            "run_results.json",
            "catalog.json",
            "static_index.html",
        )
    }


def test_a_failed_build_never_replaces_latest(runner: Runner) -> None:
    runner.run("build", BUILD_EXIT="1")
    completed = runner.run("publish", CODEBUILD_BUILD_SUCCEEDING="0")
    assert completed.returncode == 0
    copied = uploads(runner)
    assert copied and all("/runs/" in destination for _, destination in copied)
    assert "keeps the last good build" in completed.stderr
