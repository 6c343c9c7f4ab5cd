"""Settings: the environment wins over the stack state, so one variable moves a part elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loader.settings import DEFAULT_BUCKET, load_settings


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CAFE_DATABASE_URL", "CAFE_AWS_ENDPOINT_URL", "CAFE_LANDING_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CAFE_STATE_DIR", str(tmp_path))
    state = {
        "postgres": {"url": "postgresql://cafe:pw@127.0.0.1:5999/cafe"},
        "aws": {"endpoint_url": "http://127.0.0.1:6000", "queue_url": "http://q"},
    }
    (tmp_path / "stack.json").write_text(json.dumps(state))
    return tmp_path


def test_stack_state_is_the_default(state_dir: Path) -> None:
    settings = load_settings()
    assert settings.database_url == "postgresql://cafe:pw@127.0.0.1:5999/cafe"
    assert settings.aws_endpoint_url == "http://127.0.0.1:6000"
    assert settings.landing_bucket == DEFAULT_BUCKET
    assert settings.card_key_file == state_dir / "card_hash.key"
    assert settings.uses_embedded_postgres


def test_environment_overrides_the_stack(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAFE_DATABASE_URL", "postgresql://elsewhere/db")
    monkeypatch.setenv("CAFE_LANDING_BUCKET", "prod-landing")
    settings = load_settings()
    assert settings.database_url == "postgresql://elsewhere/db"
    assert settings.landing_bucket == "prod-landing"
    assert not settings.uses_embedded_postgres


def test_missing_or_corrupt_state_means_no_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAFE_DATABASE_URL", raising=False)
    monkeypatch.setenv("CAFE_STATE_DIR", str(tmp_path))
    assert load_settings().database_url is None
    (tmp_path / "stack.json").write_text("{not json")
    assert load_settings().database_url is None
