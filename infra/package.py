"""Build the deployable artefacts reproducibly: the loader Lambda zip and the dbt source zip.

    python infra/package.py [lambda|dbt|all] [--out build]

The Lambda zip holds the `loader` package and its runtime dependencies as pyproject.toml
declares them (the core `[project].dependencies`, the one list of what `loader` needs),
versions pinned by constraints.txt, installed as wheels for the Lambda runtime: CPython
3.12 on Amazon Linux 2023, x86_64, any manylinux tag its glibc (2.34) loads. boto3 and
botocore stay out: the runtime provides them, and shipping a second copy would only make
the artefact bigger. Tests, caches, headers and the parts of pyarrow the loader never
loads are stripped; the zip lists its entries sorted, with a fixed timestamp and fixed
permissions, so the same inputs give the same bytes (and sha256). Over Lambda's 250 MB
unzipped limit is an error.

The dbt source zip holds what the CodeBuild runner needs: `dbt_project/` (without
target/, logs/, dbt_packages/), `infra/dbt-runner/`, `profiles.example.yml` and
`constraints.txt`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The Lambda runtime of infra/templates/pipeline.yaml (a template test keeps them equal).
LAMBDA_RUNTIME = "python3.12"
LAMBDA_PYTHON = LAMBDA_RUNTIME.removeprefix("python")
# Amazon Linux 2023 has glibc 2.34: wheels built for it or any older glibc load there.
GLIBC_MINORS = range(17, 35)
LAMBDA_PLATFORMS = (
    "manylinux2014_x86_64",
    *(f"manylinux_2_{minor}_x86_64" for minor in GLIBC_MINORS),
)
# What the Lambda runtime itself provides (and the artefact therefore leaves out).
RUNTIME_PROVIDED = frozenset({"boto3", "botocore"})
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
# zlib's default level: level 9 took three times as long (14 s of an 18 s Lambda build
# here) for an artefact under 1% smaller.
ZIP_LEVEL = 6
# 1980-01-01, the earliest time a zip entry can carry.
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_STRIPPED_DIRS = frozenset({"__pycache__", "tests", "test", "include"})
_STRIPPED_SUFFIXES = (".pyc", ".pyo", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".cc", ".cpp")
# pip records the absolute source path of a local install here: not reproducible.
_STRIPPED_NAMES = frozenset({"direct_url.json", "INSTALLER", "REQUESTED"})
# pyarrow's Arrow Flight RPC and its native S3 filesystem (the loader reads S3 through
# boto3), and its C++ test module: 50 MiB the loader never loads. pyarrow.fs imports the
# S3 filesystem only if present; nothing the loader imports links Flight.
_UNUSED_NATIVE = (
    "pyarrow/libarrow_flight.",
    "pyarrow/libarrow_python_flight.",
    "pyarrow/_flight.",
    "pyarrow/libarrow_s3.",
    "pyarrow/_s3fs.",
    "pyarrow/_pyarrow_cpp_tests.",
)
# Build output, and the plain-dbt profile `cafe up` writes beside the project (it holds the
# local stack's password and changes with every stack).
_DBT_EXCLUDED_DIRS = frozenset(
    {"target", "logs", "dbt_packages", "__pycache__", ".user.yml", "profiles.yml"}
)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class PackagingError(Exception):
    """The artefact could not be built or breaks a limit."""


@dataclass(frozen=True)
class Artefact:
    path: Path
    sha256: str
    unzipped_bytes: int
    entries: int


def distribution_name(requirement: str) -> str:
    """The normalised (PEP 503) project name of a PEP 508 requirement."""
    match = _NAME.match(requirement)
    if match is None:
        raise PackagingError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match[1]).lower()


def lambda_requirements(pyproject: Path) -> list[str]:
    """The core dependencies of pyproject.toml, less what the Lambda runtime provides."""
    with pyproject.open("rb") as handle:
        declared = tomllib.load(handle)["project"]["dependencies"]
    return [r for r in declared if distribution_name(r) not in RUNTIME_PROVIDED]


def is_stripped(relative: Path) -> bool:
    """Whether a file of an installed tree stays out of the artefact."""
    if any(part in _STRIPPED_DIRS for part in relative.parts[:-1]):
        return True
    if relative.parts[0] == "bin":  # console scripts of the dependencies: nothing runs them
        return True
    if relative.as_posix().startswith(_UNUSED_NATIVE):
        return True
    return relative.name in _STRIPPED_NAMES or relative.name.endswith(_STRIPPED_SUFFIXES)


def tree_files(root: Path, *, keep: Iterable[Path] | None = None) -> Iterator[Path]:
    """Every regular file under `root`, relative, sorted by its POSIX path."""
    files = keep if keep is not None else (p for p in root.rglob("*") if p.is_file())
    yield from sorted((p.relative_to(root) for p in files), key=lambda p: p.as_posix())


def write_reproducible_zip(root: Path, files: Iterable[Path], destination: Path) -> Artefact:
    """Zip `files` (relative to `root`) so that equal inputs give byte-identical zips."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    unzipped = entries = 0
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in files:
            source = root / relative
            info = zipfile.ZipInfo(relative.as_posix(), date_time=FIXED_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            executable = os.access(source, os.X_OK)
            info.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
            info.create_system = 3  # Unix, so that the permissions above are honoured
            data = source.read_bytes()
            archive.writestr(info, data, compresslevel=ZIP_LEVEL)
            unzipped += len(data)
            entries += 1
    return Artefact(destination, sha256_of(destination), unzipped, entries)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    completed = subprocess.run(command, check=False, capture_output=True, text=True)
    if completed.returncode != 0:
        raise PackagingError(f"pip failed ({' '.join(args[:2])}):\n{completed.stderr[-4000:]}")


def _platform_options() -> list[str]:
    options = []
    for platform in LAMBDA_PLATFORMS:
        options += ["--platform", platform]
    return [*options, "--python-version", LAMBDA_PYTHON, "--implementation", "cp"]


def install_lambda_tree(target: Path) -> None:
    """Install the runtime dependencies for Lambda's platform, then the loader itself."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    common = ("install", "--quiet", "--no-compile", "--target", str(target))
    _pip(
        *common,
        *_platform_options(),
        "--only-binary=:all:",
        "--constraint",
        str(ROOT / "constraints.txt"),
        *lambda_requirements(ROOT / "pyproject.toml"),
    )
    pulled = sorted(
        p.name
        for p in target.glob("*.dist-info")
        if distribution_name(p.name.split("-", 1)[0]) in RUNTIME_PROVIDED
    )
    if pulled:
        raise PackagingError(
            f"a dependency pulls in what the runtime provides: {', '.join(pulled)}"
        )
    # The project is pure Python: built from this checkout without its dependencies, in a
    # scratch folder, of which only `loader` (what Lambda runs) and the distribution's
    # metadata (the ledger records its version) are kept; the `cafe` tooling stays out.
    with tempfile.TemporaryDirectory(prefix="cafe-loader-") as scratch:
        _pip("install", "--quiet", "--no-compile", "--target", scratch, "--no-deps", str(ROOT))
        built = Path(scratch)
        shutil.copytree(built / "loader", target / "loader")
        (metadata,) = built.glob("cafe_elt-*.dist-info")
        (target / metadata.name).mkdir()
        for name in ("METADATA", "WHEEL"):
            shutil.copy2(metadata / name, target / metadata.name / name)


def build_lambda(out: Path) -> Artefact:
    tree = out / "lambda" / "package"
    install_lambda_tree(tree)
    for scratch in ("lib", "bdist.linux-x86_64"):  # setuptools' leftovers in the checkout
        shutil.rmtree(ROOT / "build" / scratch, ignore_errors=True)
    kept = [p for p in tree.rglob("*") if p.is_file() and not is_stripped(p.relative_to(tree))]
    artefact = write_reproducible_zip(tree, tree_files(tree, keep=kept), out / "lambda.zip")
    if artefact.unzipped_bytes > UNZIPPED_LIMIT_BYTES:
        raise PackagingError(
            f"the Lambda artefact unzips to {artefact.unzipped_bytes / 2**20:.0f} MiB,"
            f" over Lambda's {UNZIPPED_LIMIT_BYTES / 2**20:.0f} MiB limit"
        )
    return artefact


def dbt_source_files(root: Path) -> list[Path]:
    """The files of the dbt source zip, relative to the checkout."""
    project = root / "dbt_project"
    if not project.is_dir():
        raise PackagingError(f"no dbt project at {project}")
    chosen = [root / "constraints.txt", root / "profiles.example.yml"]
    for folder in (project, root / "infra" / "dbt-runner"):
        chosen += [
            p
            for p in folder.rglob("*")
            if p.is_file() and not _DBT_EXCLUDED_DIRS.intersection(p.relative_to(root).parts)
        ]
    return list(tree_files(root, keep=chosen))


def build_dbt_source(out: Path) -> Artefact:
    return write_reproducible_zip(ROOT, dbt_source_files(ROOT), out / "dbt-source.zip")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("what", nargs="?", choices=("lambda", "dbt", "all"), default="all")
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="output folder")
    args = parser.parse_args(argv)
    builders = {"lambda": build_lambda, "dbt": build_dbt_source}
    chosen = builders if args.what == "all" else {args.what: builders[args.what]}
    try:
        for name, build in chosen.items():
            artefact = build(args.out)
            (artefact.path.parent / (artefact.path.name + ".sha256")).write_text(
                f"{artefact.sha256}  {artefact.path.name}\n"
            )
            print(
                f"{name}: {artefact.path} sha256={artefact.sha256}"
                f" entries={artefact.entries} unzipped={artefact.unzipped_bytes / 2**20:.1f} MiB"
                f" zipped={artefact.path.stat().st_size / 2**20:.1f} MiB"
            )
    except PackagingError as error:
        print(f"package: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
