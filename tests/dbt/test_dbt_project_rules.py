"""The project holds dbt-project-evaluator's rules and dbt-score's bar, read from its manifest.

No dbt package can be installed here, so dbt-project-evaluator's rules (modeling,
testing, documentation, structure, performance, governance) are checked below on the
manifest of the session's build. A model may break a rule only with the reason written in
its YAML (`meta.evaluator_exceptions: {<rule>: <why>}`); an exception that no longer
excuses anything fails too. `dbt-score lint` (from PyPI) must score the project 9.0 or
better; the score is printed in the summary at the end of the run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dbt_helpers import DbtWarehouse, add_summary_line

from cafe.dbt_project import dbt_project_dir

PACKAGE = "cafe_elt"
FANOUT_THRESHOLD = 3  # the evaluator's models_fanout_threshold
TOO_MANY_JOINS = 7  # the evaluator's too_many_joins_threshold
CHAINED_VIEWS = 4  # the evaluator's chained_views_threshold
PREFIXES = {
    ("staging",): ("stg_",),
    ("intermediate",): ("int_",),
    ("marts", "core"): ("fct_", "dim_"),
    ("marts", "reporting"): ("rpt_",),
}
MINIMUM_SCORE = 9.0
# `from schema.table` or `join schema.table` outside Jinja; `extract(hour from t.c)` is no relation.
HARD_CODED_RELATION = re.compile(r'\b(?:from|join)\s+"?\w+"?\s*\.\s*"?\w+"?', re.IGNORECASE)
EXTRACT_FROM = re.compile(r"\bextract\s*\(\s*\w+\s+from\b", re.IGNORECASE)


@dataclass(frozen=True)
class Project:
    manifest: dict[str, Any]

    def models(self) -> dict[str, dict[str, Any]]:
        return {
            uid: node
            for uid, node in self.manifest["nodes"].items()
            if node["resource_type"] == "model" and node["package_name"] == PACKAGE
        }

    def tests_of(self, model_id: str) -> list[dict[str, Any]]:
        return [
            node
            for node in self.manifest["nodes"].values()
            if node["resource_type"] == "test" and model_id in node["depends_on"]["nodes"]
        ]

    def model_children(self, uid: str) -> list[str]:
        return [c for c in self.manifest["child_map"].get(uid, []) if c.startswith("model.")]

    def parents(self, uid: str) -> list[str]:
        return list(self.manifest["nodes"][uid]["depends_on"].get("nodes", []))


@pytest.fixture(scope="module")
def project(dbt_warehouse: DbtWarehouse) -> Project:
    return Project(json.loads((dbt_warehouse.kept_state / "manifest.json").read_text()))


def _violations(project: Project) -> Iterator[tuple[str, str]]:
    """(rule, model name) for every rule a model breaks."""
    models = project.models()
    for uid, node in models.items():
        name, folder = node["name"], tuple(node["fqn"][1:-1])
        parents = project.parents(uid)
        sources = [p for p in parents if p.startswith("source.")]
        upstream_models = [p for p in parents if p.startswith(("model.", "seed.", "snapshot."))]
        children = project.model_children(uid)
        if not parents:
            yield "fct_root_models", name
        if sources and upstream_models:
            yield "fct_direct_join_to_source", name
        if sources and folder[:1] != ("staging",):
            yield "fct_marts_or_intermediate_dependent_on_source", name
        if len(sources) > 1:
            yield "fct_multiple_sources_joined", name
        if folder[:1] == ("staging",) and upstream_models:
            yield "fct_staging_dependent_on_staging_or_downstream", name
        leaves = [c for c in children if not project.model_children(c)]
        if len(leaves) > FANOUT_THRESHOLD:
            yield "fct_model_fanout", name
        if len(parents) >= TOO_MANY_JOINS:
            yield "fct_too_many_joins", name
        for parent in upstream_models:  # A -> B -> C and A -> C, B read by C alone
            for middle in upstream_models:
                if parent in project.parents(middle) and project.model_children(middle) == [uid]:
                    yield "fct_rejoining_of_upstream_concepts", name
        if HARD_CODED_RELATION.search(EXTRACT_FROM.sub("", node["raw_code"])):
            yield "fct_hard_coded_references", name
        prefixes = next((p for f, p in PREFIXES.items() if folder[: len(f)] == f), None)
        if prefixes is None or not name.startswith(prefixes):
            yield "fct_model_naming_conventions", name
        if folder[:1] == ("staging",) and len(folder) != 2:
            yield "fct_model_directories", name
        if not node["description"].strip():
            yield "fct_undocumented_models", name
        if node["access"] == "public":
            if any(not c.get("description") for c in node["columns"].values()):
                yield "fct_undocumented_public_models", name
            if not node["config"]["contract"]["enforced"]:
                yield "fct_public_models_without_contract", name
        if not project.tests_of(uid):
            yield "fct_test_coverage", name
        if not _has_tested_grain(project, uid, node):
            yield "fct_missing_primary_key_tests", name
        if _view_chain(project, uid) > CHAINED_VIEWS:
            yield "fct_chained_views_dependencies", name
    for exposure in project.manifest["exposures"].values():
        for parent in exposure["depends_on"]["nodes"]:
            node = project.manifest["nodes"].get(parent)
            if node is None:
                continue
            if node["config"]["materialized"] not in ("table", "incremental"):
                yield "fct_exposure_parents_materializations", node["name"]
            if node["access"] != "public":
                yield "fct_exposures_dependent_on_private_models", node["name"]


def _has_tested_grain(project: Project, uid: str, node: dict[str, Any]) -> bool:
    """A unique test on a column that cannot be null, or a unique-combination test."""
    not_null = {
        name
        for name, column in node["columns"].items()
        if any(c["type"] in ("not_null", "primary_key") for c in column.get("constraints", []))
    }
    unique: set[str] = set()
    for test in project.tests_of(uid):
        metadata = test.get("test_metadata") or {}
        kind, column = metadata.get("name"), test.get("column_name")
        if kind == "unique_combination_of_columns":
            return True
        if kind == "unique":
            unique.add(str(column))
        if kind == "not_null":
            not_null.add(str(column))
    return bool(unique & not_null)


def _view_chain(project: Project, uid: str) -> int:
    node = project.manifest["nodes"][uid]
    if node["config"]["materialized"] != "view":
        return 0
    upstream = [p for p in project.parents(uid) if p in project.models()]
    return 1 + max((_view_chain(project, p) for p in upstream), default=0)


def _source_violations(project: Project) -> Iterator[tuple[str, str]]:
    for uid, source in project.manifest["sources"].items():
        name = f"{source['source_name']}.{source['name']}"
        freshness = source.get("freshness") or {}
        if not (freshness.get("warn_after") or {}).get("count") and not (
            freshness.get("error_after") or {}
        ).get("count"):
            yield "fct_sources_without_freshness", name
        if not source["description"].strip():
            yield "fct_undocumented_source_tables", name
        children = [c for c in project.manifest["child_map"][uid] if c.startswith("model.")]
        if not children:
            yield "fct_unused_sources", name
        if len(children) > 1:
            yield "fct_source_fanout", name
        directory = Path(source["original_file_path"]).parent.parts
        if directory[-2:] != ("staging", source["source_name"]):
            yield "fct_source_directories", name


def _exceptions(project: Project) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for node in project.models().values():
        for rule, reason in (node["config"]["meta"].get("evaluator_exceptions") or {}).items():
            found[(rule, node["name"])] = str(reason).strip()
    return found


def test_the_project_holds_the_evaluators_rules(project: Project) -> None:
    violations = set(_violations(project)) | set(_source_violations(project))
    exceptions = _exceptions(project)
    unexcused = sorted(violations - set(exceptions))
    assert not unexcused, "rules broken without a reason in the model's YAML:\n" + "\n".join(
        f"{rule}: {name}" for rule, name in unexcused
    )
    assert all(exceptions.values()), "every exception states its reason"
    stale = sorted(set(exceptions) - violations)
    assert not stale, f"exceptions that excuse nothing any more: {stale}"


def test_every_model_has_a_tested_grain_in_the_manifest(project: Project) -> None:
    untested = [
        node["name"]
        for uid, node in project.models().items()
        if not _has_tested_grain(project, uid, node)
    ]
    assert untested == []


def test_dbt_score_is_at_least_nine(
    dbt_warehouse: DbtWarehouse, pytestconfig: pytest.Config
) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt-score"),
            "lint",
            "--manifest",
            str(dbt_warehouse.kept_state / "manifest.json"),
            "--format",
            "json",
        ],
        cwd=dbt_project_dir(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    report = json.loads(result.stdout)
    score = float(report["project"]["score"])
    add_summary_line(pytestconfig, f"dbt-score lint: project score {score:.1f} (at least 9.0)")
    assert score >= MINIMUM_SCORE, result.stdout[-4000:]


def _model(name: str, folder: list[str], parents: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "resource_type": "model",
        "package_name": PACKAGE,
        "name": name,
        "fqn": [PACKAGE, *folder, name],
        "depends_on": {"nodes": parents},
        "raw_code": extra.get("raw_code", "select 1"),
        "description": "A model.",
        "access": "protected",
        "columns": {},
        "config": {"materialized": extra.get("materialized", "table"), "meta": {}},
    }


def test_the_rules_catch_what_they_describe() -> None:
    """A small made-up project breaking rules on purpose: the checks above must see it."""
    leaves = [f"model.{PACKAGE}.rpt_{n}" for n in range(4)]
    nodes = {
        f"model.{PACKAGE}.int_spine": _model("int_spine", ["intermediate"], []),
        f"model.{PACKAGE}.fct_sales": _model(
            "fct_sales", ["marts", "core"], [], raw_code="select * from marts.dim_x"
        ),
        **{
            uid: _model(uid.split(".")[-1], ["marts", "reporting"], [f"model.{PACKAGE}.fct_sales"])
            for uid in leaves
        },
        f"test.{PACKAGE}.unique_rpt_0_id": {
            "resource_type": "test",
            "depends_on": {"nodes": [leaves[0]]},
            "test_metadata": {"name": "unique"},
            "column_name": "id",
        },
    }
    children: dict[str, list[str]] = {uid: [] for uid in nodes}
    children[f"model.{PACKAGE}.fct_sales"] = leaves
    project = Project({"nodes": nodes, "child_map": children, "exposures": {}, "sources": {}})
    found = set(_violations(project))
    assert ("fct_root_models", "int_spine") in found
    assert ("fct_model_fanout", "fct_sales") in found
    assert ("fct_hard_coded_references", "fct_sales") in found
    assert ("fct_test_coverage", "rpt_1") in found
    # A unique test without a not-null guarantee is no grain.
    assert ("fct_missing_primary_key_tests", "rpt_0") in found
