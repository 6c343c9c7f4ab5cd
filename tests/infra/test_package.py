"""infra/package.py: reproducible zips, what is stripped, the Lambda pins, the size limit."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from infra_helpers import built_lambda_artefact, package_module


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
    ],
)
def test_what_stays_out_of_the_artefact(package: ModuleType, path: str, stripped: bool) -> None:
    assert package.is_stripped(Path(path)) is stripped


def test_lambda_pins_follow_constraints_except_the_platform_overrides(
    package: ModuleType,
) -> None:
    development = "numpy==2.4.6\npyarrow==26.0.1\npsycopg==3.3.9\n"
    assert package.lambda_constraints(development).splitlines() == [
        f"numpy=={package.LAMBDA_PIN_OVERRIDES['numpy']}",
        f"pyarrow=={package.LAMBDA_PIN_OVERRIDES['pyarrow']}",
        "psycopg==3.3.9",
    ]


def test_the_dbt_source_zip_holds_the_project_and_the_runner(package: ModuleType) -> None:
    names = {p.as_posix() for p in package.dbt_source_files(package.ROOT)}
    assert {"constraints.txt", "profiles.example.yml", "dbt_project/dbt_project.yml"} <= names
    assert "infra/dbt-runner/scheduled-build.yml" in names
    assert not any(n.startswith(("dbt_project/target/", "dbt_project/logs/")) for n in names)


def test_the_built_artefact_fits_lambda_and_holds_the_handler(built_lambda: Any) -> None:
    assert built_lambda.unzipped_bytes < 250 * 1024 * 1024
    with zipfile.ZipFile(built_lambda.path) as archive:
        names = set(archive.namelist())
    assert "loader/handler.py" in names
    assert any(n.startswith("pyarrow-20.0.0.dist-info/") for n in names)
    assert any(n.startswith("psycopg_binary/") for n in names)
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
