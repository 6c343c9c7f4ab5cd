"""The dbt benchmark's rows and `make test`'s row of `make bench`'s table.

Speed goals live in `make bench`, never in a test: these check that the figures reach the
table as measured (the ratio of the right pair, the slowest panel, a missing record said).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.__main__ import make_test_row
from bench.bench_dbt import SCHEDULED_BUILD_FLAGS, BuildTiming, DbtFigures, table_rows
from cafe.dashboards.queries import PanelTiming


def _timing(wall: float, models: float, tests: float) -> BuildTiming:
    return BuildTiming(wall, models, tests, fact_seconds=0.0, slowest=())


def test_dbt_rows_give_the_fastest_runs_incremental_share_of_full_and_the_slowest_panel() -> None:
    figures = DbtFigures(
        branches=10,
        days=181,
        transactions=450_000,
        first=_timing(200.0, 150.0, 40.0),
        unchanged=(_timing(17.0, 9.0, 4.0), _timing(16.0, 9.0, 4.0), _timing(18.0, 9.0, 4.0)),
        incremental=(_timing(22.0, 11.0, 5.0), _timing(20.0, 10.0, 4.0), _timing(24.0, 9, 4)),
        full=(_timing(170.0, 110.0, 40.0), _timing(160.0, 100.0, 40.0), _timing(180.0, 1, 1)),
        identical=True,
        panels=(
            PanelTiming("Sales", "A", 0.120, 10),
            PanelTiming("Footfall", "A", 0.450, 24),
            PanelTiming("Cohorts", "B", 0.030, 5),
        ),
    )
    rows = table_rows(figures)
    assert rows[0].name == "dbt build after one more day, 10 branches x 181 days, 450,000 sales"
    # The fastest run of each: 20 s of 160 s.
    assert (rows[0].figure, rows[0].anchor) == ("20.0 s", "dbt build --full-refresh 160.0 s")
    assert rows[0].ratio.startswith("0.12 ")
    # Every run, in order, and the medians' ratio (22 of 170).
    assert rows[1].figure == "22.0, 20.0, 24.0 s"
    assert rows[1].anchor == "full refresh 170.0, 160.0, 180.0 s, nothing new 17.0, 16.0, 18.0 s"
    assert rows[1].ratio == "medians 0.13"
    # Thread times of the fastest runs.
    assert rows[2].ratio == "0.10 / 0.10"
    # dbt's own cost of a build, and what the day added to it.
    assert (rows[3].figure, rows[3].ratio) == ("16.0 s", "0.10")
    assert (rows[4].figure, rows[4].ratio) == ("4.0 s", "0.03")
    assert rows[5].figure == "yes"
    assert rows[6].name == "slowest panel of 3: Footfall"
    assert (rows[6].figure, rows[6].ratio) == ("450 ms", "1.50x")
    mismatch = table_rows(dataclasses.replace(figures, identical=False))
    assert mismatch[5].figure == "NO"


def test_make_test_row_reads_the_last_run_or_says_it_has_none(tmp_path: Path) -> None:
    record = tmp_path / "make-test-seconds"
    assert make_test_row(record).figure == "not recorded: run make test"
    record.write_text("180.4\n")
    row = make_test_row(record)
    assert (row.figure, row.ratio) == ("180 s", "0.75x")


def test_the_benchmark_builds_with_the_scheduled_builds_flags() -> None:
    script = Path("infra/dbt-runner/scheduled-build.sh").read_text()
    assert f"local flags=({' '.join(SCHEDULED_BUILD_FLAGS)})" in script
