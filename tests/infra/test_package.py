"""infra/package.py: reproducible zips, what is stripped, the Lambda's dependencies and
platform, the size limit."""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from infra_helpers import ROOT, built_lambda_artefact, load_templates, package_module


@pytest.fixture(scope="module")
def package() -> ModuleType:
    return package_module()


@pytest.fixture(scope="module")
def built_lambda() -> Any:
    return built_lambda_artefact()


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_same_files_give_the_same_zip_whatever_their_times_and_order(
    package: ModuleType, tmp_path: Path
) -> None:
    files = {"b/two.py": b"2\n", "a/one.py": b"1\n", "run.sh": b"#!/bin/sh\n"}
    first, second = tmp_path / "first", tmp_path / "second"
    make_tree(first, files)
    make_tree(second, dict(reversed(files.items())))
    (first / "run.sh").chmod(0o755)
    (second / "run.sh").chmod(0o755)
    os.utime(second / "a/one.py", (1_000_000_000, 1_000_000_000))
    one = package.write_reproducible_zip(first, package.tree_files(first), tmp_path / "1.zip")
    two = package.write_reproducible_zip(second, package.tree_files(second), tmp_path / "2.zip")
    assert one.sha256 == two.sha256
    with zipfile.ZipFile(one.path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["a/one.py", "b/two.py", "run.sh"]
    assert {i.date_time for i in infos} == {package.FIXED_DATE_TIME}
    modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in infos}
    assert modes == {"a/one.py": 0o644, "b/two.py": 0o644, "run.sh": 0o755}


def test_a_changed_byte_changes_the_digest(package: ModuleType, tmp_path: Path) -> None:
    make_tree(tmp_path / "t", {"x.py": b"x = 1\n"})
    before = package.write_reproducible_zip(tmp_path / "t", [Path("x.py")], tmp_path / "a.zip")
    (tmp_path / "t" / "x.py").write_bytes(b"x = 2\n")
    after = package.write_reproducible_zip(tmp_path / "t", [Path("x.py")], tmp_path / "b.zip")
    assert before.sha256 != after.sha256


@pytest.mark.parametrize(
    ("path", "stripped"),
    [
        ("pyarrow/tests/test_array.py", True),
        ("pyarrow/include/arrow/api.h", True),
        ("loader/__pycache__/handler.cpython-311.pyc", True),
        ("cafe_elt-0.1.0.dist-info/direct_url.json", True),
        ("bin/jp.py", True),
        ("pyarrow/lib.pyx", True),
        ("loader/handler.py", False),
        ("pyarrow/libarrow.so.2000", False),
        ("psycopg_binary.libs/libpq-abc.so.5", False),
        ("loader/testing_helpers.py", False),
        ("pyarrow/libarrow_flight.so.2600", True),
        ("pyarrow/_flight.cpython-312-x86_64-linux-gnu.so", True),
        ("pyarrow/libarrow_s3.so.2600", True),
        ("pyarrow/_s3fs.cpython-312-x86_64-linux-gnu.so", True),
        ("pyarrow/_fs.cpython-312-x86_64-linux-gnu.so", False),
        ("pyarrow/libarrow_substrait.so.2600", False),
    ],
)
def test_what_stays_out_of_the_artefact(package: ModuleType, path: str, stripped: bool) -> None:
    assert package.is_stripped(Path(path)) is stripped


def test_lambda_requirements_are_the_core_dependencies_less_what_the_runtime_has(
    package: ModuleType, tmp_path: Path
) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        "[project]\nname = 'x'\ndependencies = [\n"
        "  'boto3>=1.34', 'BotoCore', 'pyarrow>=15', 'psycopg[binary]>=3.1',\n"
        "  'aws_lambda_powertools>=2.30',\n]\n"
        "[project.optional-dependencies]\ncli = ['rich']\n"
    )
    assert package.lambda_requirements(pyproject) == [
        "pyarrow>=15",
        "psycopg[binary]>=3.1",
        "aws_lambda_powertools>=2.30",
    ]


def test_the_real_declaration_is_what_gets_installed(package: ModuleType) -> None:
    # Issue 12 point 3: one list, pyproject's core, not a second one in package.py.
    requirements = package.lambda_requirements(ROOT / "pyproject.toml")
    names = {package.distribution_name(r) for r in requirements}
    assert "pyarrow" in names and "psycopg" in names
    assert not names & {"boto3", "botocore"}
    assert not hasattr(package, "LAMBDA_REQUIREMENTS")


def test_the_platform_is_the_template_runtime_and_its_glibc(package: ModuleType) -> None:
    (function,) = [
        body["Properties"]
        for body in load_templates()["pipeline"]["Resources"].values()
        if isinstance(body, dict) and body.get("Type") == "AWS::Lambda::Function"
    ]
    assert function["Runtime"] == package.LAMBDA_RUNTIME == f"python{package.LAMBDA_PYTHON}"
    assert function["Architectures"] == ["x86_64"]
    # Amazon Linux 2023's glibc is 2.34: its wheels load, newer ones would not.
    platforms = set(package.LAMBDA_PLATFORMS)
    assert {"manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"} <= platforms
    assert "manylinux_2_35_x86_64" not in platforms


def test_a_dependency_that_pulls_in_boto3_is_refused(
    package: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def pip(*args: str) -> None:
        target = Path(args[args.index("--target") + 1])
        (target / "boto3-1.44.8.dist-info").mkdir(parents=True)

    monkeypatch.setattr(package, "_pip", pip)
    with pytest.raises(package.PackagingError, match=r"runtime provides: boto3-1\.44\.8"):
        package.install_lambda_tree(tmp_path / "tree")


def test_the_dbt_source_zip_holds_the_project_and_the_runner(package: ModuleType) -> None:
    names = {p.as_posix() for p in package.dbt_source_files(package.ROOT)}
    assert {"constraints.txt", "profiles.example.yml", "dbt_project/dbt_project.yml"} <= names
    assert {"infra/dbt-runner/scheduled-build.yml", "infra/dbt-runner/frozen-dbt.py"} <= names
    assert not any(n.startswith(("dbt_project/target/", "dbt_project/logs/")) for n in names)


def pinned(name: str) -> str:
    text = (ROOT / "constraints.txt").read_text()
    match = re.search(rf"^{name}==(\S+)$", text, re.MULTILINE | re.IGNORECASE)
    assert match, name
    return match[1]


@pytest.mark.slow
def test_the_built_artefact_fits_lambda_and_holds_the_loader_only(built_lambda: Any) -> None:
    assert built_lambda.unzipped_bytes < 250 * 1024 * 1024
    with zipfile.ZipFile(built_lambda.path) as archive:
        names = set(archive.namelist())
    assert "loader/handler.py" in names
    assert "cafe_elt-0.1.0.dist-info/METADATA" in names  # the ledger records the version
    assert not any(n.startswith("cafe/") for n in names)  # the command line stays out
    # The development pins, built for the runtime's CPython.
    assert f"pyarrow-{pinned('pyarrow')}.dist-info/METADATA" in names
    assert f"numpy-{pinned('numpy')}.dist-info/METADATA" in names
    assert "pyarrow/lib.cpython-312-x86_64-linux-gnu.so" in names
    assert any(n.startswith("psycopg_binary/") for n in names)
    assert not any(n.startswith(("boto3", "botocore")) for n in names)
    assert not any(n.startswith(("pyarrow/libarrow_flight", "pyarrow/_s3fs")) for n in names)
    assert not any("/__pycache__/" in n or n.endswith(".pyc") for n in names)
    assert not any(n.endswith("direct_url.json") for n in names)


@pytest.mark.slow
def test_building_twice_gives_the_same_sha256(
    package: ModuleType, built_lambda: Any, tmp_path: Path
) -> None:
    again = package.build_lambda(tmp_path)
    assert again.sha256 == built_lambda.sha256
    assert again.entries == built_lambda.entries


def test_an_artefact_over_the_limit_is_refused(
    package: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def install(target: Path) -> None:
        make_tree(target, {"loader/handler.py": b"x" * 2048})

    monkeypatch.setattr(package, "install_lambda_tree", install)
    monkeypatch.setattr(package, "UNZIPPED_LIMIT_BYTES", 1024)
    with pytest.raises(package.PackagingError, match="over Lambda's"):
        package.build_lambda(tmp_path)


def test_the_dbt_source_zip_leaves_out_the_plain_dbt_profile(
    package: ModuleType, tmp_path: Path
) -> None:
    # `cafe up` writes dbt_project/profiles.yml with the local stack's password in it.
    for relative in (
        "dbt_project/dbt_project.yml",
        "dbt_project/profiles.yml",
        "infra/dbt-runner/scheduled-build.yml",
        "constraints.txt",
        "profiles.example.yml",
    ):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x: 1\n")
    names = {p.as_posix() for p in package.dbt_source_files(tmp_path)}
    assert "dbt_project/dbt_project.yml" in names
    assert "dbt_project/profiles.yml" not in names
