"""Build the deployable artefacts reproducibly: the loader Lambda zip and the dbt source zip.

    python infra/package.py [lambda|dbt|all] [--out build]

The Lambda zip holds the runtime dependencies installed for the Lambda platform
(manylinux2014 x86_64, CPython 3.11, wheels only, versions pinned by constraints.txt) and
the `loader` package itself (no dependencies). Tests, caches and headers are stripped; the
zip lists its entries sorted, with a fixed timestamp and fixed permissions, so the same
inputs give the same bytes (and sha256). Over Lambda's 250 MB unzipped limit is an error.

boto3 is shipped although the Lambda runtime has one: the pinned copy makes the artefact
the same code everywhere, and the local test runs it in a venv with nothing else in it.

The dbt source zip holds what the CodeBuild runner needs: `dbt_project/` (without
target/, logs/, dbt_packages/), `infra/dbt-runner/`, `profiles.example.yml` and
`constraints.txt`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_PLATFORM = ("--platform", "manylinux2014_x86_64", "--python-version", "3.11")
# psycopg is imported by the ledger in every mode, and is the writer of local/PostgreSQL
# mode; numpy is imported by loader.reading; boto3 is pinned rather than borrowed from the
# runtime (see the module docstring).
LAMBDA_REQUIREMENTS = ("pyarrow", "numpy", "psycopg[binary]", "aws-lambda-powertools", "boto3")
# The python3.11 Lambda runtime runs on Amazon Linux 2 (glibc 2.26): only manylinux2014
# wheels load there. pyarrow 20 and numpy 2.2 are the last releases that ship them, so
# the artefact pins those instead of the development pins; the artefact test runs the
# handler on exactly these.
LAMBDA_PIN_OVERRIDES = {"pyarrow": "20.0.0", "numpy": "2.2.6"}
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
# 1980-01-01, the earliest time a zip entry can carry.
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_STRIPPED_DIRS = frozenset({"__pycache__", "tests", "test", "include"})
_STRIPPED_SUFFIXES = (".pyc", ".pyo", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".cc", ".cpp")
# pip records the absolute source path of a local install here: not reproducible.
_STRIPPED_NAMES = frozenset({"direct_url.json", "INSTALLER", "REQUESTED"})
_DBT_EXCLUDED_DIRS = frozenset({"target", "logs", "dbt_packages", "__pycache__", ".user.yml"})


class PackagingError(Exception):
    """The artefact could not be built or breaks a limit."""


@dataclass(frozen=True)
class Artefact:
    path: Path
    sha256: str
    unzipped_bytes: int
    entries: int


def is_stripped(relative: Path) -> bool:
    """Whether a file of an installed tree stays out of the artefact."""
    if any(part in _STRIPPED_DIRS for part in relative.parts[:-1]):
        return True
    if relative.parts[0] == "bin":  # console scripts of the dependencies: nothing runs them
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
            archive.writestr(info, data, compresslevel=9)
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


def lambda_constraints(development: str) -> str:
    """constraints.txt with the pins the Lambda platform needs changed."""
    lines = []
    for line in development.splitlines():
        name = line.split("==", 1)[0].strip().lower().replace("_", "-")
        if name in LAMBDA_PIN_OVERRIDES:
            line = f"{name}=={LAMBDA_PIN_OVERRIDES[name]}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def install_lambda_tree(target: Path) -> None:
    """Install the runtime dependencies for Lambda's platform, then the loader itself."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    constraints = target.parent / "constraints.txt"
    constraints.write_text(lambda_constraints((ROOT / "constraints.txt").read_text()))
    common = ("install", "--quiet", "--no-compile", "--target", str(target))
    _pip(
        *common,
        *LAMBDA_PLATFORM,
        "--implementation",
        "cp",
        "--only-binary=:all:",
        "--constraint",
        str(constraints),
        *LAMBDA_REQUIREMENTS,
    )
    # The loader is pure Python: built from this checkout, without its dependencies.
    _pip(*common, "--no-deps", str(ROOT))


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
