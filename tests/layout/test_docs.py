"""docs/contracts.md stays the truth: its reporting marts have exactly the columns dbt builds."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _documented_marts() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "contracts.md").read_text()
    marts: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.match(r"\| `(rpt_\w+)`[^|]*\|[^|]*\| (.*) \|$", line)
        if match:
            marts[match.group(1)] = [
                found.group(1)
                for entry in _top_level_entries(match.group(2))
                if (found := re.match(r"`(\w+)`", entry))
            ]
    return marts


def _top_level_entries(cell: str) -> list[str]:
    """The comma-separated entries of a table cell, commas inside parentheses kept."""
    entries, depth, current = [], 0, ""
    for character in cell:
        depth += {"(": 1, ")": -1}.get(character, 0)
        if character == "," and depth == 0:
            entries.append(current.strip())
            current = ""
        else:
            current += character
    return [*entries, current.strip()]


def _modelled_marts() -> dict[str, list[str]]:
    document = yaml.safe_load(
        (
            ROOT / "dbt_project" / "models" / "marts" / "reporting" / "_reporting__models.yml"
        ).read_text()
    )
    return {
        model["name"]: [column["name"] for column in model.get("columns", [])]
        for model in document["models"]
    }


def test_every_reporting_mart_is_documented_with_its_columns() -> None:
    documented, modelled = _documented_marts(), _modelled_marts()
    assert set(documented) == set(modelled)
    for name, columns in modelled.items():
        assert documented[name] == columns, name
