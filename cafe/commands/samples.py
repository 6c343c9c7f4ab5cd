"""`cafe generate`: write realistic branch exports in the raw format."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cafe.samples import (
    MAX_BRANCHES,
    VARIANTS,
    GenerationError,
    GenerationPlan,
    Variant,
    estimated_rows,
    iter_generated_files,
    parse_start,
)

# A fixed default start keeps `cafe generate` with the same arguments byte-for-byte repeatable.
DEFAULT_START: date = date(2024, 1, 1)
DEFAULT_SEED = 2021
# Below this many rows a run takes a second or two and a bar is just noise in logs.
PROGRESS_ROWS_THRESHOLD = 50_000


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write realistic branch files in the raw export format",
        description=(
            "Write one CSV per branch per day, in the format of the real till exports "
            "(same arguments give identical files)."
        ),
    )
    parser.add_argument(
        "--branches", type=int, required=True, help=f"number of branches (1-{MAX_BRANCHES})"
    )
    parser.add_argument("--days", type=int, required=True, help="number of trading days")
    parser.add_argument(
        "--start",
        default=DEFAULT_START.isoformat(),
        help=f"first trading day, YYYY-MM-DD (default {DEFAULT_START.isoformat()})",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        default=Variant.STANDARD.value,
        help=(
            "export format: the real one (standard), or a variant the loader must handle: "
            "reordered columns, an extra-column (drift), no-customer-columns, "
            "missing-basket and foreign (both refused), utf16, excel (re-saved)"
        ),
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    plan = GenerationPlan.for_run(args.branches, args.days, parse_start(args.start), args.seed)
    out_dir: Path = args.out
    show_progress = not args.quiet and (
        sys.stderr.isatty() or estimated_rows(plan) > PROGRESS_ROWS_THRESHOLD
    )
    started = time.perf_counter()
    rows = 0
    with Progress(
        TextColumn("generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files · {task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not show_progress,
        transient=False,
    ) as progress:
        task = progress.add_task("generate", total=plan.file_count, rows=0)
        try:
            for generated in iter_generated_files(plan, out_dir, Variant(args.variant)):
                rows += generated.rows
                progress.update(task, advance=1, rows=rows)
        except OSError as error:
            raise GenerationError(f"cannot write to {out_dir}: {error.strerror or error}") from None
    elapsed = time.perf_counter() - started
    if not args.quiet:
        rate = rows / elapsed if elapsed > 0 else float("inf")
        print(
            f"wrote {plan.file_count} files, {rows:,} rows to {out_dir} "
            f"in {elapsed:.1f} s ({rate:,.0f} rows/s)"
        )
    return 0
