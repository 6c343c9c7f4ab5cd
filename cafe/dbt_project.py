"""The dbt project as the rest of the platform sees it: where it is, and the rules it holds.

Business rules that more than dbt needs (when a branch counts as silent, how often a file is
expected) are dbt vars in `dbt_project.yml`, their one home; the dashboards and the command
line read them from there instead of repeating the numbers.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from loader.errors import ConfigurationError
from loader.settings import project_root


def dbt_project_dir() -> Path:
    return project_root() / "dbt_project"


@functools.cache
def project_vars() -> dict[str, Any]:
    """The `vars:` block of dbt_project.yml."""
    path = dbt_project_dir() / "dbt_project.yml"
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigurationError(f"cannot read {path}: {error}") from error
    found = document.get("vars") if isinstance(document, dict) else None
    return dict(found) if isinstance(found, dict) else {}


def int_var(name: str) -> int:
    """An integer var of the dbt project (a missing or non-integer var is a configuration error)."""
    value = project_vars().get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigurationError(f"dbt var {name!r} must be an integer in dbt_project.yml")
    return value


def silent_after_hours() -> int:
    """A branch is silent when its last export is older than this."""
    return int_var("silent_after_hours")


def expected_file_interval_hours() -> int:
    """How often a branch is expected to export (one file a day)."""
    return int_var("expected_file_interval_hours")
