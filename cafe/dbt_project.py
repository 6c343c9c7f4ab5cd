"""The dbt project as the rest of the platform sees it: where it is, and the rules it holds.

Business rules that more than dbt needs (when a branch counts as silent, how often a file is
expected) are dbt vars in `dbt_project.yml`, their one home; the dashboards and the command
line read them from there instead of repeating the numbers.

Where dbt writes: against this checkout's own stack (`.local/`), dbt's usual
`dbt_project/target` and `dbt_project/logs`, where a person looks; against a stack in another
state folder (tests, CI, benchmarks), `<state>/dbt/target` and `<state>/dbt/logs`, so that
concurrent builds never share a manifest or a log. The last good manifest of each target is
kept in `<state>/dbt/state/<target>/` for `--state` (slim CI and `--defer`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml

from loader.errors import ConfigurationError
from loader.settings import project_root, state_dir


def dbt_project_dir() -> Path:
    return project_root() / "dbt_project"


def is_checkout_state_dir() -> bool:
    """True when the state folder in use is this checkout's own `.local/`."""
    return state_dir().resolve() == (project_root() / ".local").resolve()


def dbt_state_root() -> Path:
    """`<state dir>/dbt`: cafe's dbt profile, and the kept artifacts of past builds."""
    return state_dir() / "dbt"


def dbt_target_dir() -> Path:
    """Where dbt writes manifest, run results and compiled SQL for the stack in use."""
    configured = os.environ.get("DBT_TARGET_PATH")
    if configured:
        return (
            Path(configured) if Path(configured).is_absolute() else dbt_project_dir() / configured
        )
    return dbt_project_dir() / "target" if is_checkout_state_dir() else dbt_state_root() / "target"


def dbt_log_dir() -> Path:
    """Where dbt writes dbt.log for the stack in use."""
    configured = os.environ.get("DBT_LOG_PATH")
    if configured:
        return (
            Path(configured) if Path(configured).is_absolute() else dbt_project_dir() / configured
        )
    return dbt_project_dir() / "logs" if is_checkout_state_dir() else dbt_state_root() / "logs"


def kept_state_dir(target: str) -> Path:
    """The last good build's artifacts for `target`: what `--state` reads."""
    return dbt_state_root() / "state" / target


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
