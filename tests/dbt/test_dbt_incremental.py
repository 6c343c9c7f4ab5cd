"""Every incremental model ends where a full rebuild ends, and each build costs its changes.

On a database of its own: two weeks of two branches are loaded and built (`dbt build`,
tests included). Then, before one incremental build, everything an incremental build must
take in arrives at once:

* one more day of files (a new day, new customers, a new week);
* a corrected re-export of a first-day file without its last lines (a file version
  superseded by one with fewer rows: its dropped lines must disappear everywhere);
* a corrected re-export of the other first-day file without its first lines (its
  customers' first visits move to a later day, week or branch, the second week's included,
  which no changed file touches: new-customer counts and cohorts move with them);
* an erasure (`cafe forget`'s statements) of a card seen in several files (revised files:
  the customer leaves every customer model, the sales stay).

The incremental build's content of every incremental model (listed from the manifest, so
that a new one cannot escape) must equal what `dbt build --full-refresh` then builds. The
incremental build must have rewritten only what the changes touch: the changed files' facts,
the touched days' sales; and a build without anything new rewrites nothing at all.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from datetime import date
from pathlib import Path

import psycopg
import pytest
from dbt_helpers import (
    AS_SCHEDULED,
    assert_dbt_ok,
    load_files,
    manifest_of,
    run_dbt_captured,
)

from cafe.samples import GenerationPlan, iter_generated_files
from loader.hashing import CardKeys, load_card_key
from loader.privacy.erasure import forget_card
from loader.privacy.store import PostgresStore
from loader.settings import Settings

pytestmark = pytest.mark.slow  # three dbt builds on a database of its own

DROPPED_LINES = 7
# Models that keep a record of builds rather than content derived from raw.
HISTORY_MODELS = {"rpt_build_results", "int_completed_builds"}
# int_file_footprints keeps superseded versions until a build completes, and stamps rows
# with the build that wrote them: compare the current footprints without the stamps.
FOOTPRINTS = "int_file_footprints"
FOOTPRINT_STAMPS = {"footprint_id", "added_at_utc", "changed_at_utc"}


@dataclasses.dataclass(frozen=True)
class Relation:
    schema: str
    table: str

    @property
    def name(self) -> str:
        return f'"{self.schema}"."{self.table}"'


def _generate(folder: Path) -> dict[date, list[Path]]:
    """Two branches by fifteen days from a Monday (three ISO weeks), by day."""
    plan = GenerationPlan.for_run(2, 15, date(2024, 5, 6), seed=3)
    by_day: dict[date, list[Path]] = {}
    for generated in iter_generated_files(plan, folder):
        by_day.setdefault(generated.day, []).append(generated.path)
    return {day: sorted(paths) for day, paths in sorted(by_day.items())}


def _reexport(original: Path, folder: Path, *, keep: slice) -> Path:
    """The same export sent again with only the data lines `keep` selects."""
    folder.mkdir(exist_ok=True)
    header, *lines = original.read_bytes().splitlines(keepends=True)
    corrected = folder / original.name
    corrected.write_bytes(header + b"".join(lines[keep]))
    return corrected


def _card_in_several_files(files: list[Path]) -> str:
    """A card number that paid in more than one of the files."""
    seen: Counter[str] = Counter()
    for path in files:
        with path.open(newline="") as handle:
            seen.update(
                {row["card_number"] for row in csv.DictReader(handle) if row["card_number"]}
            )
    card, files_with_card = seen.most_common(1)[0]
    assert files_with_card > 1
    return card


def _build(settings: Settings, *extra: str) -> None:
    assert_dbt_ok(run_dbt_captured(settings, "build", *AS_SCHEDULED, *extra))


def incremental_models(settings: Settings) -> dict[str, Relation]:
    """Every incremental model, from the manifest of the last build of the settings' database."""
    return {
        node["name"]: Relation(node["schema"], node["alias"])
        for node in manifest_of(settings)["nodes"].values()
        if node["resource_type"] == "model" and node["config"]["materialized"] == "incremental"
    }


def fingerprint(connection: psycopg.Connection, relation: Relation, name: str) -> tuple[int, str]:
    columns = [
        row[0]
        for row in connection.execute(
            "select column_name from information_schema.columns"
            " where table_schema = %s and table_name = %s order by ordinal_position",
            (relation.schema, relation.table),
        )
    ]
    where = ""
    if name == FOOTPRINTS:
        columns = [column for column in columns if column not in FOOTPRINT_STAMPS]
        where = "where is_current"
    row_text = "md5(row(" + ", ".join(f'"{column}"' for column in columns) + ")::text)"
    found = connection.execute(
        f"select count(*), coalesce(md5(string_agg({row_text}, '' order by {row_text})), '')"
        f" from {relation.name} {where}"
    ).fetchone()
    assert found is not None
    return int(found[0]), str(found[1])


def _transaction_id(connection: psycopg.Connection) -> int:
    found = connection.execute("select txid_current()").fetchone()
    assert found is not None
    return int(found[0])


def _rewritten(connection: psycopg.Connection, relation: Relation, columns: str, since: int) -> set:
    return set(
        connection.execute(
            f"select distinct {columns} from {relation.name} where xmin::text::bigint > %s",
            (since,),
        ).fetchall()
    )


def test_incremental_equals_full_refresh(
    stack: Settings, fresh_database_url: str, tmp_path: Path
) -> None:
    url = fresh_database_url
    settings = dataclasses.replace(stack, database_url=url)
    days = _generate(tmp_path / "generated")
    first_day, *_, last_day = days
    earlier = [path for day, paths in days.items() if day != last_day for path in paths]
    load_files(settings, earlier)
    _build(settings)
    models = incremental_models(settings)
    assert {"fct_transactions", "rpt_daily_branch_sales", "dim_customers", FOOTPRINTS} <= set(
        models
    )

    shortened, late_opener = days[first_day]
    erased_card = _card_in_several_files(earlier)
    load_files(
        settings,
        [
            *days[last_day],
            _reexport(shortened, tmp_path / "corrected", keep=slice(None, -DROPPED_LINES)),
            _reexport(late_opener, tmp_path / "corrected", keep=slice(25, None)),
        ],
    )
    erasure = forget_card(
        PostgresStore(url), CardKeys(load_card_key(settings)), erased_card, reason="asked"
    )
    assert erasure.counts.transactions > 1
    with psycopg.connect(url, autocommit=True) as connection:
        before_increment = _transaction_id(connection)
        revised = {
            row[0]
            for row in connection.execute(
                "select source_key from raw.loaded_files where is_current and rows_revised_at"
                " is not null"
            )
        }
        statuses = dict(
            connection.execute(
                "select source_key, status from raw.loaded_files where is_current"
            ).fetchall()
        )
    assert statuses[shortened.name] == statuses[late_opener.name] == "replaced"
    assert len(revised) > 1

    _build(settings)

    with psycopg.connect(url, autocommit=True) as connection:
        incremental = {
            name: fingerprint(connection, relation, name)
            for name, relation in models.items()
            if name not in HISTORY_MODELS
        }
        # Only the changed files' facts were rewritten, not the untouched files'.
        changed_files = {shortened.name, late_opener.name, *revised}
        changed_files |= {path.name for path in days[last_day]}
        facts = _rewritten(connection, models["fct_transactions"], "source_key", before_increment)
        assert {row[0] for row in facts} == changed_files
        # Only the days those files touch were aggregated again, and some were not.
        touched_days = set(
            connection.execute(
                "select distinct sales_date_local, branch_key from marts.fct_transactions"
                " where source_key = any(%s)",
                (sorted(changed_files),),
            ).fetchall()
        )
        sales = _rewritten(
            connection,
            models["rpt_daily_branch_sales"],
            "sales_date_local, md5(branch_name)",
            before_increment,
        )
        assert sales and sales <= touched_days
        all_days = connection.execute(
            "select count(*) from reporting.rpt_daily_branch_sales"
        ).fetchone()
        assert all_days is not None and len(sales) < all_days[0]
        # The erased card is nobody's any more; the dropped lines are gone.
        assert connection.execute(
            "select count(*) from marts.fct_transactions where source_key = %s",
            (shortened.name,),
        ).fetchone() == (len(shortened.read_bytes().splitlines()) - 1 - DROPPED_LINES,)

    _build(settings, "--full-refresh")

    with psycopg.connect(url, autocommit=True) as connection:
        full = {
            name: fingerprint(connection, relation, name)
            for name, relation in models.items()
            if name not in HISTORY_MODELS
        }
        different = sorted(name for name in incremental if incremental[name] != full[name])
        assert different == [], f"incremental and full refresh differ: {different}"
        before_rerun = _transaction_id(connection)

    # Nothing new in the ledger: an incremental build must neither change nor rewrite a row.
    _build(settings)

    with psycopg.connect(url, autocommit=True) as connection:
        for name, relation in models.items():
            if name in HISTORY_MODELS:
                continue
            assert fingerprint(connection, relation, name) == full[name], name
            touched = connection.execute(
                f"select count(*) from {relation.name} where xmin::text::bigint > %s",
                (before_rerun,),
            ).fetchone()
            assert touched == (0,), f"a build without new files rewrote {name}"
