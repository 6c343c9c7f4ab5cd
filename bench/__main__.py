"""`make bench`: every benchmark, printed as one table of figures beside their anchors.

    python -m bench [--quick]

On the running stack (`cafe up`) it runs the loader benchmark (`bench.bench_load`: raw COPY,
the server's floor, a row-at-a-time loader, peak RSS at two sizes), the dbt benchmark
(`bench.bench_dbt`: full against incremental at 10 branches x 181 days, and the slowest
dashboard panel on the marts it built), and adds `make test`'s wall time as the last run of
`make test` on this checkout recorded it (it is not re-run here: it takes minutes and runs
the same stack). Progress goes to stderr, the table to stdout. `--quick` runs small sizes,
to try the benchmark itself, not to quote.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from bench import bench_dbt, bench_load
from bench.bench_load import BenchRow, print_table

# Written by the Makefile's `test` target.
MAKE_TEST_SECONDS = Path(".local") / "bench" / "make-test-seconds"
MAKE_TEST_GOAL_SECONDS = 240.0


def make_test_row(path: Path = MAKE_TEST_SECONDS) -> BenchRow:
    """`make test`'s wall time from the file its last run wrote, against the goal."""
    name = "make test (lint, typecheck, pytest -n 2)"
    goal = f"goal {MAKE_TEST_GOAL_SECONDS:.0f} s"
    try:
        seconds = float(path.read_text().strip())
    except (OSError, ValueError):
        return BenchRow(name, "not recorded: run make test", goal, "")
    return BenchRow(
        f"{name}, last run",
        f"{seconds:.0f} s",
        goal,
        f"{seconds / MAKE_TEST_GOAL_SECONDS:.2f}x",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, to try it out")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print("loader benchmark ...", file=sys.stderr)
    if args.quick:
        rows = bench_load.loader_rows(
            rows=40_000, small_rows=10_000, row_at_a_time_rows=2_000, repeats=1
        )
    else:
        rows = bench_load.loader_rows()
    print("dbt benchmark ...", file=sys.stderr)
    branches, days = (2, 6) if args.quick else (10, 180)
    figures = bench_dbt.measure(branches, days, date(2024, 1, 1), 2021)
    rows += bench_dbt.table_rows(figures)
    rows.append(make_test_row())
    print(f"benchmarks took {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print_table(rows)
    return 0 if figures.identical else 1


if __name__ == "__main__":
    sys.exit(main())
