"""`cafe build` and `cafe docs`: dbt against the warehouse in use.

`cafe build [dbt args]` runs `dbt build` with the profile and connection of the current
settings (the local stack by default), `cafe docs` generates the single-file docs site
(`dbt docs generate --static`) and serves it on localhost. `dbt_env` and `run_dbt` are the
one place that knows how to point dbt at a warehouse; `cafe run` and the tests reuse them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cafe.dbt_project import dbt_project_dir
from loader.errors import CafeError, ConfigurationError
from loader.settings import Settings, load_settings, project_root, state_dir

DEFAULT_TARGET = "local"
DEFAULT_DOCS_PORT = 8080
STATIC_DOCS = "static_index.html"


def profiles_dir() -> Path:
    """`<state dir>/dbt`, holding profiles.yml, refreshed from profiles.example.yml.

    Copied on every call so that a changed example never leaves a stale profile behind;
    the profile holds no secrets (env_var() only), so rewriting it is harmless.
    """
    folder = state_dir() / "dbt"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(project_root() / "profiles.example.yml", folder / "profiles.yml")
    return folder


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


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment for a dbt subprocess: this process's, plus profile and connection.

    Variables already set (e.g. CAFE_PG_* for an external PostgreSQL, CAFE_REDSHIFT_* for
    Redshift) are kept unless the settings name a PostgreSQL database, which wins so that
    `cafe build` always builds where `cafe load` loaded.
    """
    env = dict(os.environ)
    env.setdefault("DBT_PROFILES_DIR", str(profiles_dir()))
    env.setdefault("CAFE_DBT_TARGET", DEFAULT_TARGET)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    if settings.database_url and env["CAFE_DBT_TARGET"] != "redshift":
        env.update(postgres_env(settings.database_url))
    return env


def dbt_executable_path() -> str:
    beside_python = Path(sys.executable).parent / "dbt"
    found = str(beside_python) if beside_python.exists() else shutil.which("dbt")
    if not found:
        raise ConfigurationError("dbt is not installed: run `make setup`")
    return found


def run_dbt(args: list[str], settings: Settings) -> int:
    """Run `dbt ARGS` in the project folder against the settings' warehouse; its exit code."""
    command = [dbt_executable_path(), *args, "--project-dir", str(dbt_project_dir())]
    completed = subprocess.run(command, cwd=dbt_project_dir(), env=dbt_env(settings), check=False)
    return completed.returncode


def _build(args: argparse.Namespace) -> int:
    return run_dbt(["build", *args.dbt_args], load_settings())


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_docs(folder: Path, port: int) -> None:
    """Serve `folder` on 127.0.0.1:PORT until interrupted."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"dbt docs at http://127.0.0.1:{port}/{STATIC_DOCS}  (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


def _docs(args: argparse.Namespace) -> int:
    exit_code = run_dbt(["docs", "generate", "--static"], load_settings())
    if exit_code:
        raise CafeError(f"dbt docs generate failed (exit code {exit_code})")
    site = dbt_project_dir() / "target"
    print(f"docs site: {site / STATIC_DOCS}")
    if not args.generate_only:
        serve_docs(site, args.port)
    return 0


def register(subparsers: Any) -> None:
    # Every argument after `build` belongs to dbt (`cafe build --select marts`): a parser
    # with no option prefix of its own takes them all as positionals, `--help` included.
    build = subparsers.add_parser(
        "build",
        help="run `dbt build` against the current target (arguments go to dbt)",
        prefix_chars="+",
        add_help=False,
    )
    build.add_argument("dbt_args", nargs=argparse.REMAINDER, help="arguments for dbt build")
    build.set_defaults(func=_build)
    docs = subparsers.add_parser("docs", help="generate the dbt docs site and serve it")
    docs.add_argument("--port", type=int, default=DEFAULT_DOCS_PORT, help="port to serve on")
    docs.add_argument(
        "--generate-only", action="store_true", help="write target/static_index.html and exit"
    )
    docs.set_defaults(func=_docs)
