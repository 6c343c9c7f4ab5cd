"""`cafe run`: the whole job on the local stack, as `make run` runs it.

Stack up → generated branch files into the landing bucket → the queue drained through the
Lambda handler → name retention (`CAFE_NAME_RETENTION_DAYS`, as the daily task in AWS) →
`dbt build` (target `local`; its manifest kept for `--state`) → docs site, from the manifest
the build just wrote (`--no-compile`: every node was compiled a moment ago) → `dbt source
freshness` (a late source is reported, never fatal; both land in
`reporting.rpt_build_results`), after the docs because it rewrites the manifest without the
compiled SQL → dashboard preview → a summary that reconciles
the ledger with the facts and counts the build's checks. Running it again loads nothing
twice: the same files arrive as duplicates and dbt's incremental models have nothing new to
do.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from rich.console import Console
from rich.table import Table

from cafe import stack
from cafe.commands.build import build, prepare_plain_dbt, run_dbt, source_freshness
from cafe.commands.load import ingest_and_report
from cafe.dbt_project import dbt_target_dir
from cafe.samples import GenerationPlan, iter_generated_files
from loader.errors import CafeError
from loader.privacy.retention import apply_retention, retention_days_from_environment
from loader.privacy.store import open_sql_store
from loader.settings import Settings, load_settings, project_root, state_dir

console = Console()
T = TypeVar("T")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="the whole job locally: stack, generated files, load, dbt build, docs, report"
    )
    parser.add_argument("--branches", type=int, default=4, help="branches to generate")
    parser.add_argument("--days", type=int, default=14, help="days of trading to generate")
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=None,
        help="first trading day (default: DAYS days before today, so freshness looks current)",
    )
    parser.add_argument("--seed", type=int, default=2021, help="generator seed")
    parser.set_defaults(func=run_pipeline)


STEPS = 8


def _step(number: int, title: str, action: Callable[[], T]) -> T:
    console.rule(f"[bold]{number}/{STEPS} {title}")
    started = time.perf_counter()
    result = action()
    console.print(f"[dim]{title}: {time.perf_counter() - started:.1f}s[/]")
    return result


def _generate(settings: Settings, args: argparse.Namespace, out_dir: Path) -> list[Path]:
    start = args.start or date.today() - timedelta(days=args.days)
    plan = GenerationPlan.for_run(args.branches, args.days, start, args.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [generated.path for generated in iter_generated_files(plan, out_dir)]
    console.print(f"{len(files)} files in {out_dir}")
    return files


def _ingest(settings: Settings, files: list[Path]) -> None:
    if ingest_and_report(files, settings) != 0:
        raise CafeError("some files failed to load; see the table above and `cafe status`")


def _dbt(settings: Settings, arguments: list[str]) -> None:
    if run_dbt(arguments, settings) != 0:
        raise CafeError(f"dbt {' '.join(arguments)} failed; see the output above")


def _retention(settings: Settings) -> None:
    # The same function as the Lambda's daily {"task": "retention"}.
    days = retention_days_from_environment()
    run = apply_retention(open_sql_store(settings), days)
    console.print(
        f"{run.counts.transactions:,} name(s) of sales dated before {run.cutoff.day:%Y-%m-%d}"
        f" and {run.counts.rejected_rows:,} refused line(s) older than {days} day(s) cleared"
        " (raw.privacy_audit)"
    )


def _build(settings: Settings) -> None:
    if build([], settings) != 0:
        raise CafeError("dbt build failed; see the output above and reporting.rpt_build_results")


def _freshness(settings: Settings) -> None:
    # A late source is news for Pipeline health, not a reason to stop the run.
    if source_freshness([], settings) != 0:
        console.print("[yellow]a source is late[/]: see the freshness lines above")


def _report(settings: Settings) -> Path:
    from cafe.report import render_report  # matplotlib is slow to import: only when needed

    return render_report(settings, state_dir() / "report")


# The tests and freshness checks of the latest build and the latest freshness run.
LATEST_CHECKS = """
select check_kind, status, count(*)
from reporting.rpt_build_results
where invocation_id in (
    select distinct on (command) invocation_id
    from reporting.rpt_build_results
    where command in ('build', 'freshness')
    order by command, recorded_at_utc desc
)
and check_kind <> 'build'
group by check_kind, status
order by check_kind, status
"""


def _summary(settings: Settings, report: Path) -> None:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        ledger = conn.execute(
            """
            select status, count(*), coalesce(sum(rows_read), 0),
                   coalesce(sum(rows_loaded), 0), coalesce(sum(rows_rejected), 0)
            from raw.loaded_files group by status order by status
            """
        ).fetchall()
        current_rows = conn.execute(
            "select coalesce(sum(rows_loaded), 0) from raw.loaded_files where is_current"
        ).fetchone()
        facts = conn.execute(
            "select (select count(*) from marts.fct_transactions),"
            " (select count(*) from marts.fct_transaction_items),"
            " (select count(*) from marts.dim_customers),"
            " (select count(*) from marts.dim_branches)"
        ).fetchone()
        checks = conn.execute(LATEST_CHECKS).fetchall()
    assert current_rows is not None and facts is not None

    table = Table(title="loads (raw.loaded_files)", title_justify="left")
    for column in ("status", "files", "rows read", "rows loaded", "rows rejected"):
        table.add_column(column, justify="right" if column != "status" else "left")
    for status, *numbers in ledger:
        table.add_row(status, *(f"{n:,}" for n in numbers))
    console.print(table)

    transactions, items, customers, branches = facts
    reconciled = transactions == current_rows[0]
    console.print(
        f"marts: {transactions:,} transactions, {items:,} transaction items, "
        f"{customers:,} pseudonymous card customers, {branches} branches"
    )
    console.print(
        ("[green]reconciled[/]" if reconciled else "[red]NOT reconciled[/]")
        + f": fct_transactions = {transactions:,}, current ledger rows_loaded = "
        f"{current_rows[0]:,}"
    )
    if checks:
        console.print(
            "checks of the build and freshness: "
            + ", ".join(f"{kind} {status} {count}" for kind, status, count in checks)
            + "  (reporting.rpt_build_results)"
        )
    docs = dbt_target_dir() / "static_index.html"
    where = Table(title="where to look", title_justify="left", show_header=False)
    where.add_column("what")
    where.add_column("where")
    where.add_row("dashboard preview", str(report))
    where.add_row("dbt docs (single file)", f"{docs}  (or `cafe docs` to serve it)")
    where.add_row("warehouse", 'psql "$(.venv/bin/cafe db-url)"')
    where.add_row("Grafana provisioning", str(project_root() / "infra" / "grafana"))
    where.add_row("stop everything", "make down")
    console.print(where)
    if not reconciled:
        raise CafeError("the facts do not reconcile with the ledger")


def run_pipeline(args: argparse.Namespace) -> int:
    if args.branches < 1 or args.days < 1:
        raise CafeError("--branches and --days must be at least 1")
    _step(1, "local stack", stack.up)
    settings = load_settings()
    files = _step(
        2, "generate branch files", lambda: _generate(settings, args, state_dir() / "generated")
    )
    prepare_plain_dbt(settings)
    _step(3, "ingest through S3 → SQS → handler", lambda: _ingest(settings, files))
    _step(4, "name retention", lambda: _retention(settings))
    _step(5, "dbt build", lambda: _build(settings))
    _step(6, "dbt docs", lambda: _dbt(settings, ["docs", "generate", "--static", "--no-compile"]))
    _step(7, "dbt source freshness", lambda: _freshness(settings))
    report = _step(8, "dashboard preview", lambda: _report(settings))
    _summary(settings, report)
    return 0
