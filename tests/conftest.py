"""Shared fixtures: one real local stack per test process, one built warehouse in it.

The stack (embedded PostgreSQL + moto S3/SQS) lives in a private state folder so that tests
never touch the developer's own `.local/` stack, and the environment is scrubbed of
settings that would point the code under test somewhere else.

`built_warehouse` is the one loaded and built warehouse that the dbt and dashboards suites
read (their `dbt_warehouse` and `marts` fixtures are views of it): a private database of the
stack receives, through the loader's own code path, everything the marts and Pipeline
health must show, then `cafe build` (models, seeds, data and unit tests) runs once and
`cafe dbt source freshness` once. Tests that need their own history (incremental builds,
odd raw rows, a live ledger) keep using fresh databases. Its tests are marked `slow` here
(each needs the loads and a full dbt build first), so `pytest -m "not slow"` is the quick
loop.

`make test` runs pytest-xdist with two workers (`-n 2`). Each worker is a test process of
its own, with its own stack in its own temporary folder and on its own ports, hence its own
databases and dbt target folders (`<state>/dbt/target`). So that no work is done twice, the
hooks at the end of this file give one worker whole groups: a module (its module fixtures
are built once), every module of the built warehouse (built once), every module that
pip-builds the checkout (they share ./build); and they hand out the longest groups first,
by the times of the last run, so that the two workers finish at about the same time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

from cafe import stack as local_stack
from cafe.commands.build import STATIC_DOCS, dbt_env
from cafe.dbt_project import dbt_target_dir, kept_state_dir
from cafe.samples import GenerationPlan, generate_branch_day, iter_generated_files
from loader.hashing import load_card_key
from loader.ledger import FileVersion, LoadResult, Status, ledger_row
from loader.service import load_path
from loader.settings import Settings, load_settings
from loader.writers import open_warehouse
from tests import group_seconds

# A checked-in copy of the real exports in ../shared/samples, so a fresh clone has them.
SAMPLES_DIR = Path(__file__).resolve().parent / "fixtures" / "samples"

_SCRUBBED = (
    "CAFE_DATABASE_URL",
    "CAFE_WAREHOUSE",
    "CAFE_AWS_ENDPOINT_URL",
    "CAFE_LANDING_BUCKET",
    "CAFE_QUEUE_URL",
    "CAFE_DLQ_URL",
    "CAFE_CARD_KEY_FILE",
    "CAFE_CARD_KEY_SECRET_ARN",
    "CAFE_CARD_KEY_VERSION",
    "CAFE_REPORTING_PASSWORD",
    "CAFE_REPORTING_DATABASE_URL",
    "CAFE_STACK_PG_PORT",
    "CAFE_STACK_AWS_PORT",
    "CAFE_DBT_TARGET",
)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real exports (three branch files)."""
    return SAMPLES_DIR


def make_stack_dir(prefix: str) -> Path:
    """A folder for a test stack outside pytest's temporary tree.

    PostgreSQL runs as another system user when tests run as root, and every pytest
    session resets `/tmp/pytest-of-<user>` to mode 0700 (and prunes old runs), which would
    pull the data folder from under a server that another session is still using.
    """
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def stack_root() -> Iterator[Path]:
    root = make_stack_dir("cafe-test-stack-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(stack_root: Path) -> Iterator[Settings]:
    """A running local stack for the whole session; `load_settings()` resolves to it."""
    saved = {name: os.environ.pop(name) for name in _SCRUBBED if name in os.environ}
    previous_state_dir = os.environ.get("CAFE_STATE_DIR")
    os.environ["CAFE_STATE_DIR"] = str(stack_root)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    try:
        local_stack.up(stack_root)
        yield load_settings()
    finally:
        local_stack.down(stack_root)
        if previous_state_dir is None:
            os.environ.pop("CAFE_STATE_DIR", None)
        else:
            os.environ["CAFE_STATE_DIR"] = previous_state_dir
        os.environ.update(saved)


@pytest.fixture(scope="session")
def database_url(stack: Settings) -> str:
    """Superuser URL of the stack's `cafe` database."""
    assert stack.database_url
    return stack.database_url


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database of the same server."""
    return url.rsplit("/", 1)[0] + f"/{database}"


@pytest.fixture
def fresh_database_url(database_url: str) -> Iterator[str]:
    """A brand-new empty database for one test; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = with_database(database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield with_database(database_url, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def grant_reporting_connect(url: str) -> None:
    # `cafe up` grants CONNECT on database `cafe` only; a test database needs its own grant.
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("grant connect on database {} to cafe_reporting").format(
                sql.Identifier(url.rsplit("/", 1)[1])
            )
        )


@contextlib.contextmanager
def private_database(stack: Settings, prefix: str) -> Iterator[Settings]:
    """A new empty database in the session's stack (readable by the reporting role); dropped.

    The settings point the loader, dbt and the reporting role at it.
    """
    assert stack.database_url
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = with_database(stack.database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(stack.database_url, name)
    reporting_url = (
        with_database(stack.reporting_database_url, name) if stack.reporting_database_url else None
    )
    try:
        grant_reporting_connect(url)
        yield dataclasses.replace(stack, database_url=url, reporting_database_url=reporting_url)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def load_files(settings: Settings, files: Sequence[Path]) -> list[LoadResult]:
    """Load files as `cafe load` does (same code path as the Lambda); one result per file."""
    warehouse = open_warehouse(settings)
    key = load_card_key(settings)
    return [load_path(path, path.name, warehouse=warehouse, key=key) for path in files]


def run_cafe(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The `cafe` command line against a database of the session's stack; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "cafe.cli", *args],
        env={**os.environ, "CAFE_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )


def assert_dbt_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


# What the built warehouse holds besides the real exports.
GENERATED_BRANCHES = 3
GENERATED_DAYS = 21
GENERATED_START = date(2024, 3, 18)  # clocks go forward on Sunday 31 March 2024
GENERATED_SEED = 7
BROKEN_BRANCH = "Whitby"
BROKEN_LINES = 12  # above the rejected-rows alert's threshold of 10
EXPORT_HEADER = "date,location,name,basket,total,payment_type,card_number"
DRIFT_COLUMN = "tip"
# A Leeds export from the generated period (so that no branch looks fresher) whose header
# names one column more than the export's, and no line.
DRIFT_KEY = "leeds_20-03-2024_18-45-00.csv"
ABANDONED_AGE = timedelta(hours=2)
STALE_AGE = timedelta(days=2)


@dataclasses.dataclass(frozen=True)
class BuiltWarehouse:
    """A private database with every kind of file loaded and `cafe build` run on it once.

    `settings` point the loader, dbt and the reporting role at it; `env` is dbt's
    environment for it; `target_dir` and `kept_state` are where its build wrote and kept
    its artifacts (`--state`).
    """

    database_url: str
    settings: Settings
    env: dict[str, str]
    target_dir: Path
    kept_state: Path
    broken_branch: str
    broken_lines: int
    drift_key: str
    drift_column: str
    stale_key: str
    abandoned_key: str


def _broken_file(folder: Path) -> Path:
    """A Whitby export with one good line and BROKEN_LINES lines the loader must reject."""
    good = '12/04/2024 10:15,Whitby,Ann Lee,"Large Latte - 2.45",2.45,CASH,'
    bad = [
        f'31/02/2024 10:{i:02d},Whitby,Ann Lee,"Large Latte - 2.45",2.45,CASH,' for i in range(6)
    ]
    bad += [
        f'13/04/2024 11:{i:02d},Whitby,Ann Lee,"Large Latte - 2.45",2.45,BITCOIN,' for i in range(6)
    ]
    assert len(bad) == BROKEN_LINES
    path = folder / "whitby_13-04-2024_09-00-00.csv"
    path.write_bytes(("\r\n".join([EXPORT_HEADER, good, *bad]) + "\r\n").encode())
    return path


def _unreadable_file(folder: Path) -> Path:
    """Bytes that are no text in any encoding a till writes: refused, nothing loaded."""
    path = folder / "leeds_14-04-2024_09-00-00.csv"
    path.write_bytes(bytes(range(256)) * 4)
    return path


def _drift_file(folder: Path) -> Path:
    path = folder / DRIFT_KEY
    path.write_bytes(f"{EXPORT_HEADER},{DRIFT_COLUMN}\r\n".encode())
    return path


def _older_version(current: Path, folder: Path) -> Path:
    """Another version of `current` under the same key (its last line dropped), last
    modified STALE_AGE ago: it arrives after the current version but is older than it."""
    lines = current.read_bytes().splitlines(keepends=True)
    older = folder / current.name
    older.write_bytes(b"".join(lines[:-1]))
    modified = (datetime.now(UTC) - STALE_AGE).timestamp()
    os.utime(older, (modified, modified))
    return older


def _record_abandoned_attempt(database_url: str, export: Path) -> None:
    """The `started` ledger row of a load of `export` that died ABANDONED_AGE ago (a
    Lambda timeout or a kill leaves it so): the loader's own row for the attempt, never
    closed. A load cannot be killed or aged in a test's time, so the row is written here."""
    content = export.read_bytes()
    attempt = FileVersion(
        source_key=export.name,
        checksum=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        started_at=datetime.now(UTC) - ABANDONED_AGE,
    )
    row = ledger_row(attempt, Status.STARTED)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("insert into raw.loaded_files ({}) values ({})").format(
                sql.SQL(", ").join(map(sql.Identifier, row)),
                sql.SQL(", ").join(sql.Placeholder() * len(row)),
            ),
            list(row.values()),
        )


def _load_expecting(settings: Settings, files: Sequence[Path], status: Status) -> None:
    for result in load_files(settings, files):
        assert result.status is status, result


@pytest.fixture(scope="session")
def built_warehouse(
    stack: Settings, samples_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BuiltWarehouse]:
    """The real exports, three branches by three weeks of generated trade across the switch
    to British Summer Time, a file with broken lines, one that is not text, one with an
    unknown column (drift), a late older version of a generated export (stale) and a load
    attempt that died two hours ago; then `cafe build --threads 4` (every model, seed, data
    and unit test: all green) and `cafe dbt source freshness` once (its exit code is not
    asserted: a source that no load here writes is empty, hence late)."""
    with private_database(stack, "built") as settings:
        assert settings.database_url
        folder = tmp_path_factory.mktemp("exports")
        for sample in sorted(samples_dir.glob("*.csv")):
            shutil.copy(sample, folder / sample.name)
        plan = GenerationPlan.for_run(
            GENERATED_BRANCHES, GENERATED_DAYS, GENERATED_START, seed=GENERATED_SEED
        )
        generated = [g.path for g in iter_generated_files(plan, folder)]
        assert len(generated) == plan.file_count
        good = sorted(folder.glob("*.csv"))
        _load_expecting(settings, [*good, _broken_file(folder), _drift_file(folder)], Status.LOADED)
        _load_expecting(settings, [_unreadable_file(folder)], Status.REFUSED)
        stale = _older_version(generated[0], tmp_path_factory.mktemp("older"))
        _load_expecting(settings, [stale], Status.STALE)
        # The next day's export of the last generated branch: its load died, never retried.
        next_day = GENERATED_START + timedelta(days=GENERATED_DAYS)
        never_landed = tmp_path_factory.mktemp("never-landed")
        abandoned = generate_branch_day(
            never_landed, plan.branches[-1], next_day, seed=GENERATED_SEED
        )
        _record_abandoned_attempt(settings.database_url, abandoned.path)

        assert_dbt_ok(run_cafe(settings.database_url, "build", "--threads", "4"))
        run_cafe(settings.database_url, "dbt", "source", "freshness")
        yield BuiltWarehouse(
            database_url=settings.database_url,
            settings=settings,
            env=dbt_env(settings),
            target_dir=dbt_target_dir(),
            kept_state=kept_state_dir("local"),
            broken_branch=BROKEN_BRANCH,
            broken_lines=BROKEN_LINES,
            drift_key=DRIFT_KEY,
            drift_column=DRIFT_COLUMN,
            stale_key=stale.name,
            abandoned_key=abandoned.path.name,
        )


@dataclasses.dataclass(frozen=True)
class BuiltDocs:
    """`cafe docs --generate-only` run once on the built warehouse: what the command printed,
    and a copy of the site it wrote beside the manifest and catalog it was made from."""

    command: subprocess.CompletedProcess[str]
    folder: Path


@pytest.fixture(scope="session")
def built_docs(
    built_warehouse: BuiltWarehouse, tmp_path_factory: pytest.TempPathFactory
) -> BuiltDocs:
    """The docs site of the built warehouse, generated once for the tests that check the
    command and the tests that open the site in a browser. Copied out of the target folder,
    which later builds of the warehouse's tests rewrite."""
    written = built_warehouse.target_dir / STATIC_DOCS
    written.unlink(missing_ok=True)  # so that the copy is this command's work
    command = run_cafe(built_warehouse.database_url, "docs", "--generate-only")
    folder = tmp_path_factory.mktemp("docs-site")
    if command.returncode == 0:
        for name in (STATIC_DOCS, "manifest.json", "catalog.json"):
            shutil.copyfile(built_warehouse.target_dir / name, folder / name)
    return BuiltDocs(command, folder)


# --- The `slow` mark and the run's summary, from one process or many -------------------

SUMMARY_PLUGIN = "cafe-summary-lines"


def _uses_built_warehouse(item: pytest.Item) -> bool:
    return "built_warehouse" in getattr(item, "fixturenames", ())


class SummaryLines:
    """Lines for the run's final summary (e.g. the dbt project's score), from any worker."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:  # a worker: its controller prints them
            workeroutput["summary_lines"] = self.lines

    @pytest.hookimpl(optionalhook=True)  # an xdist hook: absent with `-p no:xdist`
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        self.lines.extend(getattr(node, "workeroutput", {}).get("summary_lines", []))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.lines:
            terminalreporter.write_line(line)


def add_summary_line(config: pytest.Config, line: str) -> None:
    """Print `line` in the terminal summary at the end of the run (make test's output)."""
    # By its registered name: test modules may hold another import of this file.
    plugin = config.pluginmanager.get_plugin(SUMMARY_PLUGIN)
    assert plugin is not None, "tests/conftest.py registers it in pytest_configure"
    plugin.add(line)


# --- Running in parallel (pytest-xdist) -------------------------------------------------
#
# The controller of `pytest -n N` collects nothing, so the workers tell it each module's
# group through a file (xdist's own `loadgroup` would carry the group in the test's node
# id, which pytest 9.2 no longer lets a plugin change: pytest-xdist#1386).

WAREHOUSE_GROUP = "built-warehouse"
# Modules that pip-build this checkout: setuptools builds in the source tree (./build, the
# egg-info) and the Lambda build deletes ./build/lib afterwards, so two at once would trip
# over each other. One worker runs them, one after the other (and builds the Lambda
# artefact once: infra_helpers caches it per process).
CHECKOUT_BUILD_GROUP = "builds-the-checkout"
CHECKOUT_BUILDERS = frozenset(
    {
        "tests/layout/test_install.py",
        "tests/infra/test_package.py",
        "tests/infra/test_artefact_handler.py",
    }
)
GROUPS_FILE_INPUT = "cafe_groups_file"


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def module_groups(items: Sequence[pytest.Item]) -> dict[str, str]:
    """Each test module's group: the built warehouse's, the checkout builders', or its own."""
    groups: dict[str, str] = {}
    for item in items:
        module = module_of(item.nodeid)
        if _uses_built_warehouse(item):
            groups[module] = WAREHOUSE_GROUP
        elif module in CHECKOUT_BUILDERS:
            groups[module] = CHECKOUT_BUILD_GROUP
        else:
            groups.setdefault(module, module)
    return groups


def longest_first(
    groups: dict[str, list[pytest.Item]], seconds: dict[str, float]
) -> list[list[pytest.Item]]:
    """Groups by the seconds they last took, longest first (two workers then finish at about
    the same time); a group never timed goes first when it holds a slow test (the one with
    the most slow tests first: on a fresh clone, the shared warehouse), else last."""

    def expected(name: str) -> tuple[float, int]:
        if name in seconds:
            return seconds[name], 0
        slow = sum(1 for item in groups[name] if item.get_closest_marker("slow"))
        return (float("inf") if slow else 0.0), slow

    return [groups[name] for name in sorted(groups, key=expected, reverse=True)]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: the `slow` mark must be on before `-m` deselects.
    for item in items:
        if _uses_built_warehouse(item):
            item.add_marker(pytest.mark.slow)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        _order_and_publish_groups(config, items, Path(workerinput[GROUPS_FILE_INPUT]))


def _order_and_publish_groups(
    config: pytest.Config, items: list[pytest.Item], groups_file: Path
) -> None:
    """A worker's collection: sorted longest group first, the groups written for the
    controller (every worker collects the same tests, so each writes the same file)."""
    by_module = module_groups(items)
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        groups.setdefault(by_module[module_of(item.nodeid)], []).append(item)
    cache = getattr(config, "cache", None)
    seconds = group_seconds.expected(cache.get(group_seconds.KEY, {}) if cache is not None else {})
    # The controller hands out groups in this order, each group's tests in collection order.
    items[:] = [item for group in longest_first(groups, seconds) for item in group]
    written = groups_file.with_name(f"{groups_file.name}.{os.getpid()}")
    written.write_text(json.dumps(by_module))
    written.replace(groups_file)


class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """xdist's scope scheduling with the suite's groups as scopes: one worker runs a whole
    group, groups are handed out in collection order (the workers sort it longest first)."""

    def __init__(self, config: pytest.Config, log: Any, groups: ParallelGroups) -> None:
        super().__init__(config, log)
        self.groups = groups

    def _split_scope(self, nodeid: str) -> str:
        return self.groups.group_of(nodeid)


class ParallelGroups:
    """The controller's side: the groups file, the scheduler, and how long each group took
    (kept in pytest's cache for the next run's order)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="cafe-xdist-"))
        self.groups_file = self.folder / "groups.json"
        self.groups: dict[str, str] | None = None
        self.seconds: dict[str, float] = {}

    def group_of(self, nodeid: str) -> str:
        """The group of a test; first asked once every worker has collected."""
        if self.groups is None and self.groups_file.exists():
            self.groups = json.loads(self.groups_file.read_text())
        module = module_of(nodeid)
        return (self.groups or {}).get(module, module)

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[GROUPS_FILE_INPUT] = str(self.groups_file)

    @pytest.hookimpl(tryfirst=True)  # before xdist's own, which answers for every mode
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "loadgroup":
            return None  # another distribution asked for by name
        return GroupScheduling(config, log, self)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        group = self.group_of(report.nodeid)
        self.seconds[group] = self.seconds.get(group, 0.0) + report.duration

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        cache = getattr(session.config, "cache", None)
        if cache is not None and exitstatus == 0 and self.seconds:
            # Merged: a run of a few folders keeps the other groups' times.
            cache.set(group_seconds.KEY, {**cache.get(group_seconds.KEY, {}), **self.seconds})

    def pytest_unconfigure(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SummaryLines(), SUMMARY_PLUGIN)
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        config.pluginmanager.register(ParallelGroups(), "cafe-parallel-groups")


# --- The garbage collector in a test process --------------------------------------------
#
# A worker holds dbt, boto3, moto, pyarrow and sqlfluff, and its tests run dbt in process:
# each full collection walked that whole heap, 32 times a run, 13.6 s of each worker's time
# (measured with gc.callbacks). Freezing what collection imported and collecting young
# objects every 50,000 allocations rather than 700: 10 full collections, 6 s.
GC_THRESHOLDS = (50_000, 20, 20)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
