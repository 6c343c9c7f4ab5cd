"""`cafe build`, `cafe dbt` and `cafe docs`: dbt against the warehouse in use.

`cafe build [dbt args]` runs `dbt build` with the profile and connection of the current
settings (the local stack by default, target `local`) and keeps the manifest of the last
good build for `--state`; `cafe dbt ARGS...` runs any dbt command the same way; `cafe docs`
generates the single-file docs site (`dbt docs generate --static`) and serves it on
localhost. `dbt_env` and `run_dbt` are the one place that knows how to point dbt at a
warehouse; `cafe run`, the benchmarks and the tests reuse them.

cafe's own dbt profile is `profiles.example.yml` as it is (every setting an `env_var()`),
copied to `<state>/dbt/profiles.yml`; the connection comes from the settings as `CAFE_PG_*`.
The commands also keep `dbt_project/profiles.yml`, the profile of a person's plain `dbt`,
pointing at this checkout's stack (`cafe.dbt_profile`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cafe.dbt_profile import ProfileOutcome, ensure_local_profile, postgres_env
from cafe.dbt_project import (
    dbt_log_dir,
    dbt_project_dir,
    dbt_state_root,
    dbt_target_dir,
    kept_state_dir,
)
from loader.errors import CafeError, ConfigurationError
from loader.settings import Settings, load_settings, project_root

DEFAULT_TARGET = "local"
# Targets of profiles.example.yml that are not PostgreSQL: CAFE_PG_* mean nothing to them.
REDSHIFT_TARGETS = frozenset({"prod"})
# What `--state` reads: the manifest (state:modified, --defer) and run results (result:)
# of a build, the freshness results (source_status:) of `dbt source freshness`.
BUILD_ARTIFACTS = ("manifest.json", "run_results.json")
FRESHNESS_ARTIFACTS = ("sources.json",)
DEFAULT_DOCS_PORT = 8080
STATIC_DOCS = "static_index.html"


def profiles_dir() -> Path:
    """`<state dir>/dbt`, holding cafe's profiles.yml: profiles.example.yml, kept identical.

    The profile holds no secret (env_var() only), so refreshing it is harmless; it is only
    rewritten when the example changed, so that concurrent dbt runs never read half a file.
    """
    folder = dbt_state_root()
    folder.mkdir(parents=True, exist_ok=True)
    example = (project_root() / "profiles.example.yml").read_bytes()
    profile = folder / "profiles.yml"
    if not profile.exists() or profile.read_bytes() != example:
        staged = folder / f".profiles.yml.{os.getpid()}"
        staged.write_bytes(example)
        staged.replace(profile)
    return folder


def _option_value(args: Sequence[str], *names: str) -> str | None:
    """The value of the last `--name VALUE` / `--name=VALUE` among dbt's arguments."""
    found: str | None = None
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                found = args[index + 1]
            elif arg.startswith(f"{name}="):
                found = arg.split("=", 1)[1]
    return found


def requested_target(args: Sequence[str], env: Mapping[str, str]) -> str:
    """The profile target a dbt command with these arguments and environment uses."""
    return _option_value(args, "--target", "-t") or env.get("CAFE_DBT_TARGET") or DEFAULT_TARGET


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment for a dbt subprocess: this process's, plus profile and connection.

    Variables already set (e.g. CAFE_PG_* for an external PostgreSQL, CAFE_REDSHIFT_* for
    Redshift, CAFE_DBT_TARGET, DBT_TARGET_PATH) are kept, except that the settings'
    PostgreSQL database wins for the PostgreSQL targets, so that `cafe build` always builds
    where `cafe load` loaded.
    """
    env = dict(os.environ)
    env.setdefault("DBT_PROFILES_DIR", str(profiles_dir()))
    env.setdefault("CAFE_DBT_TARGET", DEFAULT_TARGET)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    env.setdefault("DBT_TARGET_PATH", str(dbt_target_dir()))
    env.setdefault("DBT_LOG_PATH", str(dbt_log_dir()))
    if settings.database_url and env["CAFE_DBT_TARGET"] not in REDSHIFT_TARGETS:
        env.update(postgres_env(settings.database_url))
    return env


def dbt_executable_path() -> str:
    beside_python = Path(sys.executable).parent / "dbt"
    found = str(beside_python) if beside_python.exists() else shutil.which("dbt")
    if not found:
        raise ConfigurationError("dbt is not installed: run `make setup`")
    return found


def frozen_dbt_path() -> Path:
    return project_root() / "infra" / "dbt-runner" / "frozen-dbt.py"


def dbt_command() -> list[str]:
    """How the commands run dbt: `frozen-dbt.py`, dbt's own command line with what importing
    dbt built kept out of the garbage collector (about 0.7 s of each build; the file says
    why), by this Python, as the scheduled build does; the `dbt` executable when this
    Python has no dbt of its own."""
    launcher = frozen_dbt_path()
    if launcher.exists() and importlib.util.find_spec("dbt.cli") is not None:
        return [sys.executable, str(launcher)]
    return [dbt_executable_path()]


def run_dbt(args: list[str], settings: Settings) -> int:
    """Run `dbt ARGS` in the project folder against the settings' warehouse; its exit code."""
    command = [*dbt_command(), *args, "--project-dir", str(dbt_project_dir())]
    completed = subprocess.run(command, cwd=dbt_project_dir(), env=dbt_env(settings), check=False)
    return completed.returncode


def keep_state(
    args: Sequence[str], settings: Settings, artifacts: Sequence[str] = BUILD_ARTIFACTS
) -> Path:
    """Copy the artifacts a successful dbt command wrote to where `--state` finds them."""
    env = dbt_env(settings)
    written = Path(_option_value(args, "--target-path") or env["DBT_TARGET_PATH"])
    if not written.is_absolute():
        written = dbt_project_dir() / written
    kept = kept_state_dir(requested_target(args, env))
    kept.mkdir(parents=True, exist_ok=True)
    for name in artifacts:
        if (written / name).exists():
            staged = kept / f".{name}.{os.getpid()}"
            shutil.copyfile(written / name, staged)
            staged.replace(kept / name)
    return kept


def build(args: list[str], settings: Settings) -> int:
    """`dbt build ARGS`; after a good build its manifest becomes the kept state."""
    exit_code = run_dbt(["build", *args], settings)
    if exit_code == 0:
        keep_state(args, settings)
    return exit_code


def source_freshness(args: list[str], settings: Settings) -> int:
    """`dbt source freshness ARGS` (recorded in rpt_build_results); its sources.json is kept."""
    exit_code = run_dbt(["source", "freshness", *args], settings)
    keep_state(args, settings, FRESHNESS_ARTIFACTS)
    return exit_code


def prepare_plain_dbt(settings: Settings) -> None:
    """Point a person's plain `dbt` at this checkout's stack; say so when the file changes."""
    outcome = ensure_local_profile(settings)
    if outcome in (ProfileOutcome.WRITTEN, ProfileOutcome.UPDATED):
        print(f"dbt_project/profiles.yml {outcome.value}: plain `dbt` there uses the local stack")


def _build(args: argparse.Namespace) -> int:
    settings = load_settings()
    prepare_plain_dbt(settings)
    return build(list(args.dbt_args), settings)


def _dbt(args: argparse.Namespace) -> int:
    settings = load_settings()
    prepare_plain_dbt(settings)
    dbt_args = list(args.dbt_args)
    if not dbt_args:
        raise CafeError("name a dbt command, e.g. `cafe dbt debug` or `cafe dbt test -s marts`")
    if dbt_args[0] == "build":
        return build(dbt_args[1:], settings)
    if dbt_args[:2] == ["source", "freshness"]:
        return source_freshness(dbt_args[2:], settings)
    return run_dbt(dbt_args, settings)


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
    site = dbt_target_dir()
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
    dbt = subparsers.add_parser(
        "dbt",
        help="any dbt command against the current target, e.g. `cafe dbt test -s marts`",
        prefix_chars="+",
        add_help=False,
    )
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER, help="a dbt command and its arguments")
    dbt.set_defaults(func=_dbt)
    docs = subparsers.add_parser("docs", help="generate the dbt docs site and serve it")
    docs.add_argument("--port", type=int, default=DEFAULT_DOCS_PORT, help="port to serve on")
    docs.add_argument(
        "--generate-only", action="store_true", help="write target/static_index.html and exit"
    )
    docs.set_defaults(func=_docs)
