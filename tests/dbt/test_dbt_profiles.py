"""The profiles: a plain `dbt` gets the local stack without touching a person's edits.

`profiles.example.yml` is the one source of the targets; `dbt_project/profiles.yml` is that
file with the local stack's connection written in as defaults, rewritten while nobody
edits it and left alone once someone does. cafe's own commands use the example as it is.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from cafe import dbt_profile
from cafe.commands.build import dbt_env, requested_target
from cafe.dbt_profile import (
    CHECKSUM_MARKER,
    ProfileOutcome,
    ensure_local_profile,
    postgres_env,
    render_local_profile,
    write_local_profile,
)
from loader.errors import ConfigurationError
from loader.settings import Settings, project_root

STACK_URL = "postgresql://cafe:s3cret-Pw_1@127.0.0.1:54321/cafe"
EXAMPLE = (project_root() / "profiles.example.yml").read_text(encoding="utf-8")


def _outputs(profile_text: str) -> dict[str, dict[str, object]]:
    document = yaml.safe_load(profile_text)
    outputs: dict[str, dict[str, object]] = document["cafe_elt"]["outputs"]
    return outputs


def test_the_example_holds_the_four_targets_and_no_secret() -> None:
    outputs = _outputs(EXAMPLE)
    assert set(outputs) == {"dev", "ci", "local", "prod"}
    assert {outputs[name]["type"] for name in ("dev", "ci", "local")} == {"postgres"}
    assert outputs["prod"]["type"] == "redshift"
    # A person's default is their own schemas; the shared names belong to local and prod.
    assert "CAFE_DBT_TARGET', 'dev'" in yaml.safe_load(EXAMPLE)["cafe_elt"]["target"]
    assert "dbt_" in str(outputs["dev"]["schema"]) and "ci_" in str(outputs["ci"]["schema"])
    for output in outputs.values():
        password = str(output.get("password", ""))
        assert password.startswith("{{ env_var("), "a password must come from the environment"


def test_the_local_profile_is_the_example_with_the_stack_as_defaults() -> None:
    rendered = render_local_profile(EXAMPLE, _connection())
    assert "env_var('CAFE_PG_PORT', '54321')" in rendered
    assert "env_var('CAFE_PG_PASSWORD', 's3cret-Pw_1')" in rendered
    body = rendered.partition(CHECKSUM_MARKER)[2].partition("\n")[2]
    assert body == _with_stack_defaults(EXAMPLE)
    # The same four targets, every PostgreSQL one pointing at the stack.
    assert set(_outputs(rendered)) == set(_outputs(EXAMPLE))


def _connection() -> dict[str, str]:
    return postgres_env(STACK_URL)


def _with_stack_defaults(text: str) -> str:
    for name, value in _connection().items():
        for default in ("'127.0.0.1'", "'5432'", "'cafe'", "''"):
            text = text.replace(f"env_var('{name}', {default})", f"env_var('{name}', '{value}')")
    return text


def test_a_value_that_cannot_be_quoted_is_refused() -> None:
    connection = {**_connection(), "CAFE_PG_PASSWORD": "it's"}
    with pytest.raises(ConfigurationError, match="CAFE_PG_PASSWORD"):
        render_local_profile(EXAMPLE, connection)


def test_written_private_rewritten_while_untouched_and_kept_once_edited(tmp_path: Path) -> None:
    profile = tmp_path / "profiles.yml"
    assert write_local_profile(STACK_URL, profile) is ProfileOutcome.WRITTEN
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert write_local_profile(STACK_URL, profile) is ProfileOutcome.UNCHANGED

    moved = STACK_URL.replace("54321", "54999")
    assert write_local_profile(moved, profile) is ProfileOutcome.UPDATED
    assert "env_var('CAFE_PG_PORT', '54999')" in profile.read_text()

    edited = profile.read_text().replace("threads: 4", "threads: 8", 1)
    profile.write_text(edited)
    assert write_local_profile(STACK_URL, profile) is ProfileOutcome.KEPT_EDITED
    assert profile.read_text() == edited

    handwritten = "cafe_elt:\n  target: dev\n  outputs: {}\n"
    profile.write_text(handwritten)
    assert write_local_profile(STACK_URL, profile) is ProfileOutcome.KEPT_EDITED
    assert profile.read_text() == handwritten


def test_only_the_checkouts_own_stack_writes_the_plain_dbt_profile(stack: Settings) -> None:
    # The session's stack lives in a temporary state folder, not in this checkout's .local/.
    profile = project_root() / "dbt_project" / "profiles.yml"
    before = profile.read_bytes() if profile.exists() else None
    assert ensure_local_profile(stack) is ProfileOutcome.SKIPPED
    assert (profile.read_bytes() if profile.exists() else None) == before


def test_the_checkouts_own_stack_gets_a_plain_dbt_profile(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the session's stack were this checkout's .local/ (without touching the real file).
    monkeypatch.setattr(dbt_profile, "is_checkout_state_dir", lambda: True)
    monkeypatch.setattr(dbt_profile, "local_profile_path", lambda: tmp_path / "profiles.yml")
    assert ensure_local_profile(stack) is ProfileOutcome.WRITTEN
    outputs = _outputs((tmp_path / "profiles.yml").read_text())
    assert stack.database_url
    assert postgres_env(stack.database_url)["CAFE_PG_PORT"] in str(outputs["dev"]["port"])
    assert ensure_local_profile(stack) is ProfileOutcome.UNCHANGED


def test_cafe_commands_default_to_local_and_connect_where_cafe_loads(stack: Settings) -> None:
    env = dbt_env(stack)
    assert env["CAFE_DBT_TARGET"] == "local"
    assert stack.database_url and env["CAFE_PG_PORT"] in stack.database_url
    assert (Path(env["DBT_PROFILES_DIR"]) / "profiles.yml").read_text() == EXAMPLE
    assert requested_target(["build", "--target", "dev"], env) == "dev"
    assert requested_target(["build", "-t=ci"], env) == "ci"
    assert requested_target(["build"], {}) == "local"
