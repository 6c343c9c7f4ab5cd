"""The profile of a plain `dbt` in dbt_project/: written for the local stack, never over edits.

dbt looks for `profiles.yml` in the folder it runs in, so `dbt_project/profiles.yml`
(git-ignored) makes `cd dbt_project && dbt build` reach the stack that `cafe up` started,
with no variable set. The file is `profiles.example.yml` (the one source of the targets)
with the stack's connection written in as the defaults of the `CAFE_PG_*` variables, so
setting a variable still wins. It holds the stack's password, hence mode 0600 and never
tracked. A checksum line records what cafe wrote: a file whose body no longer matches it
was edited by a person and is left alone, whatever changes in the stack.

Only the checkout's own stack (`.local/`) writes it: a stack in another state folder (a
test's, CI's) must not repoint a person's dbt.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cafe.dbt_project import dbt_project_dir, is_checkout_state_dir
from loader.errors import ConfigurationError
from loader.settings import Settings, project_root

PROFILE_FILE_NAME = "profiles.yml"
CHECKSUM_MARKER = "# cafe-profile-sha256: "
HEADER = """\
# Written by cafe for this checkout's local stack: profiles.example.yml with the stack's
# connection as the defaults of the CAFE_PG_* variables (a variable you set still wins).
# It holds the stack's password: git-ignored, mode 0600. Yours to edit: once you change
# it, cafe leaves it alone; delete it and run `cafe up` for a fresh one.
"""
# The connection settings whose defaults the local profile fills in.
CONNECTION_VARIABLES = (
    "CAFE_PG_HOST",
    "CAFE_PG_PORT",
    "CAFE_PG_USER",
    "CAFE_PG_PASSWORD",
    "CAFE_PG_DBNAME",
)
# Characters that would end the Jinja string or the YAML scalar the value sits in.
_UNSAFE_IN_PROFILE = re.compile(r"['\"\\\n\r{}]")


class ProfileOutcome(enum.Enum):
    WRITTEN = "written"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    KEPT_EDITED = "kept (edited by you)"
    SKIPPED = "skipped (not this checkout's local stack)"


def postgres_env(database_url: str) -> dict[str, str]:
    """CAFE_PG_* for the profile, from a libpq URL `postgresql://user:pw@host:port/db`."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise ConfigurationError(f"not a PostgreSQL URL: {parts.scheme}://{parts.hostname}...")
    return {
        "CAFE_PG_HOST": parts.hostname,
        "CAFE_PG_PORT": str(parts.port or 5432),
        "CAFE_PG_USER": unquote(parts.username or ""),
        "CAFE_PG_PASSWORD": unquote(parts.password or ""),
        "CAFE_PG_DBNAME": unquote(parts.path.lstrip("/")) or "cafe",
    }


def local_profile_path() -> Path:
    return dbt_project_dir() / PROFILE_FILE_NAME


def _checksum(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def render_local_profile(example: str, connection: dict[str, str]) -> str:
    """The example profile with each CAFE_PG_* default replaced by the connection's value."""
    body = example
    for name in CONNECTION_VARIABLES:
        value = connection[name]
        if _UNSAFE_IN_PROFILE.search(value):
            raise ConfigurationError(f"{name} holds a character a dbt profile cannot quote")
        pattern = re.compile(rf"env_var\('{name}'(?:,\s*'[^']*')?\)")
        # No backslash can reach the replacement (refused above), so it is taken literally.
        body, replaced = pattern.subn(f"env_var('{name}', '{value}')", body)
        if replaced != 1:
            raise ConfigurationError(
                f"profiles.example.yml must read {name} exactly once (found {replaced})"
            )
    return f"{HEADER}{CHECKSUM_MARKER}{_checksum(body)}\n{body}"


def _was_edited(current: str) -> bool:
    """True unless the file is exactly what cafe wrote (its body matches the checksum line)."""
    _, marker, rest = current.partition(CHECKSUM_MARKER)
    if not marker:
        return True
    recorded, newline, body = rest.partition("\n")
    return not newline or recorded.strip() != _checksum(body)


def _write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with a file only its owner can read."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".profiles-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(temporary).chmod(0o600)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_local_profile(database_url: str, destination: Path) -> ProfileOutcome:
    """Write the plain-dbt profile for `database_url` to `destination`, unless someone edited it."""
    example = (project_root() / "profiles.example.yml").read_text(encoding="utf-8")
    wanted = render_local_profile(example, postgres_env(database_url))
    try:
        current = destination.read_text(encoding="utf-8")
    except FileNotFoundError:
        _write_private(destination, wanted)
        return ProfileOutcome.WRITTEN
    if current == wanted:
        return ProfileOutcome.UNCHANGED
    if _was_edited(current):
        return ProfileOutcome.KEPT_EDITED
    _write_private(destination, wanted)
    return ProfileOutcome.UPDATED


def ensure_local_profile(settings: Settings) -> ProfileOutcome:
    """Keep dbt_project/profiles.yml pointing at this checkout's running local stack."""
    if not settings.uses_embedded_postgres or not is_checkout_state_dir():
        return ProfileOutcome.SKIPPED
    if not settings.database_url:
        return ProfileOutcome.SKIPPED
    return write_local_profile(settings.database_url, local_profile_path())
