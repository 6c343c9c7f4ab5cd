"""deploy.sh and destroy.sh refuse clearly, and exit non-zero, without AWS access."""

from __future__ import annotations

import subprocess
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
