"""deploy.sh and destroy.sh: they refuse clearly without AWS access, deploy in the order that
keeps events from meeting an unprepared warehouse, and destroy what they say they destroy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from infra_helpers import INFRA


@pytest.mark.parametrize("script", ["deploy.sh", "destroy.sh"])
def test_without_the_aws_cli_the_script_says_so(script: str, tmp_path: Path) -> None:
    completed = subprocess.run(
        [str(INFRA / script)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    assert "aws CLI is not installed" in completed.stderr


@pytest.mark.parametrize("script", ["deploy.sh", "destroy.sh"])
def test_without_credentials_the_script_says_so(script: str, tmp_path: Path) -> None:
    fake_aws = tmp_path / "bin" / "aws"
    fake_aws.parent.mkdir()
    # Stands in for the CLI as it answers with no credentials configured.
    fake_aws.write_text(
        "#!/bin/sh\necho 'Unable to locate credentials. You can configure credentials by"
        ' running "aws configure".\' >&2\nexit 255\n'
    )
    fake_aws.chmod(0o755)
    completed = subprocess.run(
        [str(INFRA / script)],
        env={"PATH": f"{fake_aws.parent}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    assert "no usable AWS credentials" in completed.stderr
    assert "Unable to locate credentials" in completed.stderr
    assert "==> stack" not in completed.stdout  # nothing was attempted


# ---- the order of a deploy and what a destroy keeps, against a stand-in aws CLI ----------


class FakeAws:
    """deploy.sh and destroy.sh run against tests/infra/fake_aws.py as `aws` (and as the
    bootstrap's python); `calls` is every command they ran, in order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        self.state = root / "state.json"
        self.log = root / "calls.jsonl"
        fake = Path(__file__).with_name("fake_aws.py")
        for program in ("aws", "python"):
            wrapper = self.bin / program
            # -I -S: the standard library is all it needs, and a call starts faster without
            # the venv's site-packages.
            command = f'exec "{sys.executable}" -I -S "{fake}" {program} "$@"'
            wrapper.write_text(f"#!/bin/sh\n{command}\n")
            wrapper.chmod(0o755)
        self.build = root / "build"
        self.build.mkdir()
        for name in ("lambda.zip", "dbt-source.zip"):
            (self.build / name).write_bytes(b"zip")
            (self.build / f"{name}.sha256").write_text(f"{'ab' * 32}  {name}\n")

    def run(self, script: str, **settings: str) -> subprocess.CompletedProcess[str]:
        environment = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.root),
            "FAKE_AWS_STATE": str(self.state),
            "FAKE_AWS_LOG": str(self.log),
            "PYTHON": str(self.bin / "python"),
            "CAFE_SKIP_PACKAGE": "true",
            "CAFE_BUILD_DIR": str(self.build),
            **settings,
        }
        self.log.write_text("")
        completed = subprocess.run(
            [str(INFRA / script)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        return completed

    @property
    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def steps(self) -> list[str]:
        """The calls that change something, named: `deploy <stack>[ TriggersEnabled=x]`, ..."""
        named = []
        for call in self.calls:
            if call[:3] == ["aws", "cloudformation", "deploy"]:
                stack = call[call.index("--stack-name") + 1].removeprefix("cafe-elt-")
                trigger = [a for a in call if a.startswith("TriggersEnabled=")]
                named.append(" ".join(["deploy", stack, *trigger]))
            elif call[:3] == ["aws", "cloudformation", "delete-stack"]:
                named.append("delete " + call[-1].removeprefix("cafe-elt-"))
            elif call[0] == "python":
                named.append("bootstrap")
            elif call[1:3] in (
                ["lambda", "update-event-source-mapping"],
                ["redshift-serverless", "create-snapshot"],
                ["redshift-serverless", "delete-snapshot"],
            ):
                named.append(call[2])
        return named

    def parameters(self, stack: str) -> dict[str, str]:
        state = json.loads(self.state.read_text())
        return dict(state["stacks"][f"cafe-elt-{stack}"]["parameters"])

    def stacks(self) -> set[str]:
        state = json.loads(self.state.read_text())
        return {name.removeprefix("cafe-elt-") for name in state["stacks"]}


@pytest.fixture
def aws(tmp_path: Path) -> FakeAws:
    return FakeAws(tmp_path)


def test_first_deploy_bootstraps_before_the_trigger_is_turned_on(aws: FakeAws) -> None:
    # Point 5: foundation, warehouse, bootstrap, pipeline with the trigger off, enable.
    aws.run("deploy.sh")
    assert aws.steps() == [
        "deploy foundation",
        "deploy network",
        "deploy warehouse",
        "bootstrap",
        "deploy pipeline TriggersEnabled=false",
        "deploy pipeline TriggersEnabled=true",
        "deploy dbt-runner",
        "deploy grafana",
    ]
    assert json.loads(aws.state.read_text())["stacks"]["cafe-elt-foundation"]["protected"]


def test_a_redeploy_pauses_the_running_loader_before_migrating(aws: FakeAws) -> None:
    aws.run("deploy.sh")
    aws.run("deploy.sh")
    steps = aws.steps()
    assert steps.index("update-event-source-mapping") < steps.index("bootstrap")
    assert steps[-4:-2] == [
        "deploy pipeline TriggersEnabled=false",
        "deploy pipeline TriggersEnabled=true",
    ]


def test_deploy_passes_one_timeout_and_the_s3_prefix_list(aws: FakeAws) -> None:
    aws.run("deploy.sh", CAFE_LOADER_TIMEOUT_SECONDS="600", CAFE_LOADER_CONCURRENCY="6")
    assert aws.parameters("foundation")["LoaderTimeoutSeconds"] == "600"
    pipeline = aws.parameters("pipeline")
    assert pipeline["LoaderTimeoutSeconds"] == "600"
    assert pipeline["LoaderMaxConcurrency"] == "6"
    assert pipeline["NameRetentionDays"] == "30"
    assert pipeline["LandingQueueArn"] == "cafe-elt-foundation-LandingQueueArn"
    assert not any("CardKeyVersion" in name for name in pipeline)
    warehouse = aws.parameters("warehouse")
    assert warehouse["S3PrefixListId"] == "pl-0123456789abcdef0"
    assert warehouse["BaseCapacityRpu"] == "4"
    assert aws.parameters("grafana")["SubnetId"] == "subnet-a"  # private, the first one


def test_redshift_log_groups_get_a_retention(aws: FakeAws) -> None:
    # Point 17: Redshift would create them never-expiring.
    aws.run("deploy.sh", CAFE_LOG_RETENTION_DAYS="30")
    retention = [c for c in aws.calls if c[1:3] == ["logs", "put-retention-policy"]]
    groups = {c[c.index("--log-group-name") + 1] for c in retention}
    assert groups == {
        "/aws/redshift/serverless/connectionlog",
        "/aws/redshift/serverless/userlog",
        "/aws/redshift/serverless/useractivitylog",
    }
    assert {c[c.index("--retention-in-days") + 1] for c in retention} == {"30"}


@pytest.mark.slow
def test_a_plain_destroy_snapshots_the_warehouse_and_keeps_the_foundation(aws: FakeAws) -> None:
    aws.run("deploy.sh")
    completed = aws.run("destroy.sh")
    assert aws.steps() == [
        "delete grafana",
        "delete dbt-runner",
        "delete pipeline",
        "create-snapshot",
        "delete warehouse",
        "delete network",
    ]
    assert aws.stacks() == {"foundation"}
    assert "Kept, with the foundation stack cafe-elt-foundation" in completed.stdout
    assert "Redshift snapshot cafe-elt-final-" in completed.stdout
    # Point 3: a redeploy finds the kept data where it left it, and no name conflicts.
    aws.run("deploy.sh")
    assert aws.stacks() >= {"foundation", "warehouse", "pipeline"}


@pytest.mark.slow
def test_destroying_the_data_after_a_plain_destroy_really_deletes_it(aws: FakeAws) -> None:
    # Point 3: this used to find no stacks and silently keep the secret and the key.
    aws.run("deploy.sh")
    aws.run("destroy.sh")
    completed = aws.run("destroy.sh", CAFE_DESTROY_DATA="yes")
    assert aws.steps() == ["delete-snapshot", "delete foundation"]
    assert aws.stacks() == set()
    calls = aws.calls
    unprotect = next(i for i, c in enumerate(calls) if "--no-enable-termination-protection" in c)
    emptied = [c for c in calls if c[1:3] == ["s3api", "list-object-versions"]]
    assert len(emptied) == 2  # the landing and the deployment bucket
    secret = next(i for i, c in enumerate(calls) if c[1:3] == ["secretsmanager", "delete-secret"])
    assert "--force-delete-without-recovery" in calls[secret]
    delete = next(i for i, c in enumerate(calls) if c[1:3] == ["cloudformation", "delete-stack"])
    assert unprotect < secret < delete
    assert "pending deletion for 30 days" in completed.stdout


@pytest.mark.slow
def test_destroying_everything_at_once_takes_no_final_snapshot(aws: FakeAws) -> None:
    aws.run("deploy.sh")
    aws.run("destroy.sh", CAFE_DESTROY_DATA="yes")
    assert "create-snapshot" not in aws.steps()
    assert aws.steps()[-1] == "delete foundation"
    assert aws.stacks() == set()
