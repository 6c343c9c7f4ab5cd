"""dbt benchmark: a full rebuild against an incremental build after one more day of files.

    python -m bench.bench_dbt [--branches 10] [--days 180] [--seed 2021]

In a scratch database of the running stack (`cafe up`, or CAFE_DATABASE_URL) it loads
BRANCHES x DAYS generated branch files through the loader (about 450k transactions with
the defaults), builds the project once, loads one more day of files (one per branch) and
then times, on the same data:

(a) `dbt build` — incremental: the facts add only the new file versions;
(b) `dbt build --full-refresh` — everything rebuilt from raw (the anchor);

and, before that day is loaded, (c) a `dbt build` with nothing new to build: what dbt costs
for a build of this project whatever the data (starting, reading the project, and a round
of work for each of its nodes). (a) minus (c) is the day's own work.

Each is timed `BUILD_REPEATS` times and the fastest run counts, as for the loader: one run
of a 6 s build moves by 10% with what else the machine does. (b) and (c) repeat on the same
data; (a) is repeated on the next days, each loaded before its build (after (b), so the
full refreshes and the first (a) see the same rows). The table shows every run.

Both run as the scheduled builds do (infra/dbt-runner/scheduled-build.sh): with the data
tests, without the unit tests and the seeds' own tests (`SCHEDULED_BUILD_FLAGS`: selector
`scheduled_build`, and a file log of warnings and errors), and in one target folder, so that
dbt re-reads the project from its partial-parse file as it does in the scheduled build's
container (its `dbt source freshness` runs first) and in a developer's checkout. Each timed
build starts on a settled server (`settle`: `VACUUM (ANALYZE)` and a `CHECKPOINT` first), as
the day between two scheduled builds leaves it, not in the autovacuum and checkpoint of the
step just before.

Besides wall-clock time it prints the time dbt spent in models and in tests (from
run_results.json), and the facts' own times. On the built marts it then
times every SQL panel of both dashboards (PostgreSQL flavour, over the whole trading
period, the fastest of three runs). `dbt_rows` returns the figures as rows of `make
bench`'s table. The scratch database is dropped at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from bench.bench_load import BenchRow, print_table
from cafe.commands.build import run_dbt
from cafe.dashboards.flavours import POSTGRES
from cafe.dashboards.provisioning import DASHBOARDS, dashboard_json
from cafe.dashboards.queries import PanelTiming, sales_window, time_panel_queries
from cafe.samples import GenerationPlan, iter_generated_files
from loader.errors import ConfigurationError
from loader.hashing import load_card_key
from loader.service import load_path
from loader.settings import Settings, load_settings
from loader.writers import open_warehouse

FACTS = ("fct_transactions", "fct_transaction_items")
# What infra/dbt-runner/scheduled-build.sh adds to `dbt build`: the project's selector
# (dbt_project/selectors.yml), without the unit tests and the seeds' own tests, and a file
# log of warnings and errors only, as the scheduled build keeps
# (tests/unit/test_bench_table.py keeps the two equal).
SCHEDULED_BUILD_FLAGS = ("--selector", "scheduled_build", "--log-level-file", "warn")
SLOWEST_SHOWN = 5
BUILD_REPEATS = 3
INCREMENTAL_SHARE_GOAL = 0.15
SLOWEST_PANEL_GOAL_SECONDS = 0.3
PANEL_REPEATS = 3


@dataclass(frozen=True)
class BuildTiming:
    wall_seconds: float
    model_seconds: float
    test_seconds: float
    fact_seconds: float
    slowest: tuple[tuple[str, float], ...]


def _with_database(url: str, database: str) -> str:
    return url.rsplit("/", 1)[0] + f"/{database}"


@contextmanager
def scratch_database(settings: Settings) -> Iterator[Settings]:
    """Settings pointing at a new empty database of the same server; dropped afterwards."""
    if not settings.database_url:
        raise ConfigurationError("no database: run `cafe up` or set CAFE_DATABASE_URL")
    name = f"cafe_bench_dbt_{uuid.uuid4().hex[:8]}"
    admin = _with_database(settings.database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield dataclasses.replace(
            settings, database_url=_with_database(settings.database_url, name)
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def load(settings: Settings, files: list[Path]) -> int:
    """Load files through the loader's own code path; the rows loaded."""
    warehouse = open_warehouse(settings)
    key = load_card_key(settings)
    return sum(
        load_path(path, path.name, warehouse=warehouse, key=key).counts.loaded for path in files
    )


def settle(settings: Settings) -> None:
    """The state a day between scheduled builds leaves the server in, as pgbench prepares
    its runs: the scratch database vacuumed and analyzed, then a checkpoint. Otherwise the
    autovacuum of what the step before wrote (a build of 40 s, a load of 450k rows) and the
    checkpoint that spreads its writes (or the loader benchmark's) over the next minutes
    run during the next timed build and share its two cores and its disk."""
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        connection.execute("vacuum (analyze)")
        try:
            connection.execute("checkpoint")
        except psycopg.errors.InsufficientPrivilege:
            # CHECKPOINT needs a superuser or pg_checkpoint: an external server's user may
            # have neither, and its builds are then timed with the checkpoints as they come.
            print("bench: no privilege to CHECKPOINT; timing without", file=sys.stderr)


def build(settings: Settings, target_path: Path, *extra: str) -> BuildTiming:
    """`dbt build` (into a private target folder), timed, with dbt's own breakdown."""
    started = time.perf_counter()
    exit_code = run_dbt(
        ["build", "--quiet", "--target-path", str(target_path), *SCHEDULED_BUILD_FLAGS, *extra],
        settings,
    )
    wall = time.perf_counter() - started
    if exit_code:
        raise RuntimeError(f"dbt build {' '.join(extra)} failed with exit code {exit_code}")
    results = json.loads((target_path / "run_results.json").read_text())["results"]
    by_kind: dict[str, float] = {"model": 0.0, "test": 0.0, "unit_test": 0.0, "fact": 0.0}
    for result in results:
        kind = result["unique_id"].split(".", 1)[0]
        seconds = float(result["execution_time"])
        by_kind[kind] = by_kind.get(kind, 0.0) + seconds
        if kind == "model" and result["unique_id"].rsplit(".", 1)[-1] in FACTS:
            by_kind["fact"] += seconds
    ranked = sorted(results, key=lambda result: -float(result["execution_time"]))
    return BuildTiming(
        slowest=tuple(
            (result["unique_id"].split(".", 2)[-1], float(result["execution_time"]))
            for result in ranked[:SLOWEST_SHOWN]
        ),
        wall_seconds=wall,
        model_seconds=by_kind["model"],
        test_seconds=by_kind["test"] + by_kind["unit_test"],
        fact_seconds=by_kind["fact"],
    )


def count_rows(settings: Settings, schema: str, table: str) -> int:
    assert settings.database_url
    query = sql.SQL("select count(*) from {}.{}").format(
        sql.Identifier(schema), sql.Identifier(table)
    )
    with psycopg.connect(settings.database_url) as connection:
        found = connection.execute(query).fetchone()
    return int(found[0]) if found else 0


def generate(
    plan: GenerationPlan, folder: Path, extra_days: int
) -> tuple[list[Path], list[list[Path]]]:
    """The plan's files: those of all days but the last `extra_days`, and each of those
    days' files."""
    first_extra = plan.start + timedelta(days=plan.days - extra_days)
    earlier: list[Path] = []
    extra: list[list[Path]] = [[] for _ in range(extra_days)]
    for generated in iter_generated_files(plan, folder):
        if generated.day < first_extra:
            earlier.append(generated.path)
        else:
            extra[(generated.day - first_extra).days].append(generated.path)
    return earlier, extra


def _print_timing(name: str, timing: BuildTiming) -> None:
    print(
        f"  {name:<34} {timing.wall_seconds:>7.1f} s wall"
        f"  (models {timing.model_seconds:>6.1f} s, tests {timing.test_seconds:>6.1f} s,"
        f" facts {timing.fact_seconds:>6.1f} s)"
    )
    print(
        "      slowest: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timing.slowest)
    )


@dataclass(frozen=True)
class DbtFigures:
    branches: int
    days: int  # loaded for the first incremental build and the full refreshes
    transactions: int
    first: BuildTiming
    unchanged: tuple[BuildTiming, ...]  # builds with nothing new: dbt's own cost of a build
    incremental: tuple[BuildTiming, ...]  # one per extra day, in order
    full: tuple[BuildTiming, ...]
    identical: bool
    panels: tuple[PanelTiming, ...]


def fastest(timings: tuple[BuildTiming, ...]) -> BuildTiming:
    return min(timings, key=lambda timing: timing.wall_seconds)


def median_seconds(timings: tuple[BuildTiming, ...]) -> float:
    return statistics.median(timing.wall_seconds for timing in timings)


def panel_timings(settings: Settings) -> tuple[PanelTiming, ...]:
    """Every SQL panel of both dashboards on the built marts, over the whole trading period."""
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        window = sales_window(connection, "reporting")
        if window is None:
            raise RuntimeError("the reporting marts are empty: nothing to time the panels on")
        return tuple(
            timing
            for build_dashboard in DASHBOARDS.values()
            for timing in time_panel_queries(
                connection,
                dashboard_json(build_dashboard, POSTGRES),
                POSTGRES,
                window,
                repeat=PANEL_REPEATS,
            )
        )


def measure(
    branches: int, days: int, start: date, seed: int, repeats: int = BUILD_REPEATS
) -> DbtFigures:
    """Load `days` days and build; then, each timed `repeats` times on a settled server: a
    build with nothing new; one more day and an incremental build; full refreshes of that
    same data; and more days, each with its incremental build."""
    plan = GenerationPlan.for_run(branches, days + repeats, start, seed)
    with scratch_database(load_settings()) as settings, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        earlier, extra_days = generate(plan, folder / "files", repeats)
        started = time.perf_counter()
        loaded = load(settings, earlier)
        print(
            f"loaded {loaded:,} transactions from {len(earlier)} files"
            f" in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        target = folder / "target"

        def settled_build(*extra: str) -> BuildTiming:
            settle(settings)
            return build(settings, target, *extra)

        first = build(settings, target)
        unchanged = [settled_build() for _ in range(repeats)]
        load(settings, extra_days[0])
        incremental = [settled_build()]
        facts_incremental = count_rows(settings, "marts", "fct_transactions")
        full = [settled_build("--full-refresh") for _ in range(repeats)]
        facts_full = count_rows(settings, "marts", "fct_transactions")
        panels = panel_timings(settings)
        for day in extra_days[1:]:
            load(settings, day)
            incremental.append(settled_build())
    return DbtFigures(
        branches=branches,
        days=days + 1,
        transactions=facts_full,
        first=first,
        unchanged=tuple(unchanged),
        incremental=tuple(incremental),
        full=tuple(full),
        identical=facts_incremental == facts_full,
        panels=panels,
    )


def _runs(timings: tuple[BuildTiming, ...]) -> str:
    return ", ".join(f"{timing.wall_seconds:.1f}" for timing in timings) + " s"


def table_rows(figures: DbtFigures) -> list[BenchRow]:
    """The figures as `make bench` rows: the fastest run of each build, then every run."""
    incremental, full = fastest(figures.incremental), fastest(figures.full)
    unchanged = fastest(figures.unchanged)
    scale = f"{figures.branches} branches x {figures.days} days, {figures.transactions:,} sales"
    slowest = max(figures.panels, key=lambda timing: timing.seconds)
    day_work = incremental.wall_seconds - unchanged.wall_seconds
    return [
        BenchRow(
            f"dbt build after one more day, {scale}",
            f"{incremental.wall_seconds:.1f} s",
            f"dbt build --full-refresh {full.wall_seconds:.1f} s",
            f"{incremental.wall_seconds / full.wall_seconds:.2f}"
            f" (goal <= {INCREMENTAL_SHARE_GOAL})",
        ),
        BenchRow(
            f"  every run, fastest counted (one more day: {len(figures.incremental)} days)",
            _runs(figures.incremental),
            f"full refresh {_runs(figures.full)}, nothing new {_runs(figures.unchanged)}",
            f"medians {median_seconds(figures.incremental) / median_seconds(figures.full):.2f}",
        ),
        BenchRow(
            "  of which models / tests (dbt's thread time)",
            f"{incremental.model_seconds:.1f} s / {incremental.test_seconds:.1f} s",
            f"{full.model_seconds:.1f} s / {full.test_seconds:.1f} s",
            f"{incremental.model_seconds / full.model_seconds:.2f}"
            f" / {incremental.test_seconds / full.test_seconds:.2f}",
        ),
        BenchRow(
            "  dbt build with nothing new (dbt's own cost of a build)",
            f"{unchanged.wall_seconds:.1f} s",
            f"dbt build --full-refresh {full.wall_seconds:.1f} s",
            f"{unchanged.wall_seconds / full.wall_seconds:.2f}",
        ),
        BenchRow(
            "  the day's own work (after one more day - nothing new)",
            f"{day_work:.1f} s",
            f"dbt build --full-refresh {full.wall_seconds:.1f} s",
            f"{day_work / full.wall_seconds:.2f}",
        ),
        BenchRow(
            "incremental facts equal the full refresh",
            "yes" if figures.identical else "NO",
            "fct_transactions row count",
            "",
        ),
        BenchRow(
            f"slowest panel of {len(figures.panels)}: {slowest.panel_title}",
            f"{slowest.seconds * 1000:.0f} ms",
            f"goal {SLOWEST_PANEL_GOAL_SECONDS * 1000:.0f} ms",
            f"{slowest.seconds / SLOWEST_PANEL_GOAL_SECONDS:.2f}x",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--branches", type=int, default=10)
    parser.add_argument("--days", type=int, default=180, help="days loaded before the extra days")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1))
    parser.add_argument("--seed", type=int, default=2021)
    args = parser.parse_args(argv)
    figures = measure(args.branches, args.days, args.start, args.seed)
    _print_timing("first build", figures.first)
    for timing in figures.unchanged:
        _print_timing("(c) build with nothing new", timing)
    for timing in figures.incremental:
        _print_timing("(a) incremental dbt build", timing)
    for timing in figures.full:
        _print_timing("(b) dbt build --full-refresh", timing)
    print_table(table_rows(figures))
    return 0 if figures.identical else 1


if __name__ == "__main__":
    sys.exit(main())
