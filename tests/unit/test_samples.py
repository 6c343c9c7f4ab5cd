"""`cafe generate` and `cafe.samples`: real export format, realism, determinism, CLI."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cafe import cli
from cafe.catalogue import (
    CATALOGUE,
    CATEGORIES,
    PRODUCTS_BY_DISPLAY_NAME,
    SIZES,
    PriceSchedule,
    Size,
    basket_item,
)
from cafe.samples import (
    HEADER,
    GeneratedFile,
    GenerationError,
    GenerationPlan,
    Variant,
    branch_profile,
    generate_branch_day,
    iter_generated_files,
)
from loader.contract import LineRules
from loader.reading import FileFacts, inspect_file, read_blocks
from loader.validation import validate_block

DATE_PATTERN = re.compile(r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}$")
ITEM_PATTERN = re.compile(r"^(Regular|Large) .+ - \d+\.\d{2}$")
ITEM_PARTS = re.compile(r"^(?P<size>Regular|Large) (?P<product>.+) - (?P<price>\d+\.\d{2})$")
# The real exports write `5.2`, `12.95`, `5.0` and, in one file, `5`.
TOTAL_PATTERN = re.compile(r"^\d+(\.\d{1,2})?$")
CARD_PATTERN = re.compile(r"^\d{16}$")
FILE_NAME_PATTERN = re.compile(r"^[a-z-]+_\d{2}-\d{2}-\d{4}_09-00-00\.csv$")

PERIOD_START = date(2024, 1, 1)
PERIOD_DAYS = 42
PERIOD_BRANCHES = 4


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def assert_real_export_format(path: Path) -> None:
    """The checks a real export passes; generated files must pass the same ones."""
    data = path.read_bytes()
    assert FILE_NAME_PATTERN.match(path.name)
    lines = data.split(b"\r\n")
    assert lines[-1] == b"", "file must end with CRLF"
    assert all(b"\n" not in line and b"\r" not in line for line in lines), "CRLF only"
    records = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert tuple(records[0]) == HEADER
    assert len(records) > 1
    for record in records[1:]:
        assert len(record) == len(HEADER)
        when, location, name, basket, total, payment, card = record
        assert DATE_PATTERN.match(when)
        datetime.strptime(when, "%d/%m/%Y %H:%M")  # a date that exists
        assert location == location.strip().capitalize()
        assert path.name.startswith(location.lower() + "_")
        assert name.strip()
        items = basket.split(", ")
        assert all(ITEM_PATTERN.match(item) for item in items), basket
        assert TOTAL_PATTERN.match(total)
        assert Decimal(total) == sum(Decimal(item.rsplit(" - ", 1)[1]) for item in items)
        assert payment in ("CARD", "CASH")
        assert (card == "") if payment == "CASH" else CARD_PATTERN.match(card)


def reserialised(path: Path) -> bytes:
    """The file's records written back by `csv.writer` (QUOTE_MINIMAL, CRLF)."""
    with path.open(newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(records)
    return buffer.getvalue().encode("utf-8")


@pytest.fixture(scope="module")
def sample_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("sample_day")
    return generate_branch_day(out_dir, "Chesterfield", date(2021, 8, 25), seed=3).path


@dataclass(frozen=True)
class Transaction:
    branch: str
    at: datetime
    basket: tuple[str, ...]
    payment: str
    card: str


@pytest.fixture(scope="module")
def period(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerationPlan, list[Transaction]]:
    """Six weeks of four branches (about 40k transactions), prices rising half-way."""
    plan = GenerationPlan.for_run(PERIOD_BRANCHES, PERIOD_DAYS, PERIOD_START, seed=11)
    out_dir = tmp_path_factory.mktemp("period")
    transactions = [
        Transaction(
            branch=row["location"],
            at=datetime.strptime(row["date"], "%d/%m/%Y %H:%M"),
            basket=tuple(row["basket"].split(", ")),
            payment=row["payment_type"],
            card=row["card_number"],
        )
        for generated in iter_generated_files(plan, out_dir)
        for row in read_rows(generated.path)
    ]
    return plan, transactions


def test_real_samples_pass_the_format_checks(samples_dir: Path) -> None:
    # Guards the checker itself: the real exports must satisfy it.
    for sample in sorted(samples_dir.glob("*.csv")):
        with sample.open(newline="") as handle:
            crlf = handle.readline().endswith("\r\n")
        if crlf:
            assert_real_export_format(sample)
            assert reserialised(sample) == sample.read_bytes()


def test_generated_file_has_the_real_export_format(sample_day: Path) -> None:
    assert sample_day.name == "chesterfield_25-08-2021_09-00-00.csv"
    assert_real_export_format(sample_day)


def test_generated_quoting_is_exactly_csv_quote_minimal(sample_day: Path) -> None:
    data = sample_day.read_bytes()
    assert reserialised(sample_day) == data
    assert b'"' in data  # multi-item baskets are quoted, as in the samples


def test_totals_are_written_like_the_samples(sample_day: Path) -> None:
    for row in read_rows(sample_day):
        pence = sum(round(Decimal(i.rsplit(" - ", 1)[1]) * 100) for i in row["basket"].split(", "))
        assert row["total"] == repr(pence / 100)


def test_generate_branch_day_reports_rows_and_cards(tmp_path: Path) -> None:
    generated = generate_branch_day(tmp_path, "Leeds", date(2024, 3, 1), seed=5)
    rows = read_rows(generated.path)
    assert generated.rows == len(rows) > 0
    used = [row["card_number"] for row in rows if row["payment_type"] == "CARD"]
    assert list(generated.card_numbers) == list(dict.fromkeys(used))
    assert generated.path.name == "leeds_01-03-2024_09-00-00.csv"


def test_same_seed_gives_identical_bytes_and_other_seeds_differ(tmp_path: Path) -> None:
    def run(seed: int, name: str) -> dict[str, bytes]:
        plan = GenerationPlan.for_run(2, 3, date(2023, 11, 26), seed)
        return {
            g.path.name: g.path.read_bytes() for g in iter_generated_files(plan, tmp_path / name)
        }

    first, again, other = run(1, "a"), run(1, "b"), run(2, "c")
    assert first == again
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)


def test_about_thirty_percent_pay_cash(period: tuple[GenerationPlan, list[Transaction]]) -> None:
    _, transactions = period
    cash_share = sum(t.payment == "CASH" for t in transactions) / len(transactions)
    assert 0.25 <= cash_share <= 0.35


def test_weekday_trade_peaks_at_breakfast_and_lunch(
    period: tuple[GenerationPlan, list[Transaction]],
) -> None:
    _, transactions = period
    by_hour = Counter(t.at.hour for t in transactions if t.at.weekday() < 5)
    mid_afternoon = by_hour[15]
    assert by_hour[8] > 1.5 * mid_afternoon
    assert by_hour[12] > 1.5 * mid_afternoon
    assert by_hour[10] < by_hour[8] and by_hour[10] < by_hour[12]


def test_weekends_open_later(period: tuple[GenerationPlan, list[Transaction]]) -> None:
    _, transactions = period
    first_sale: dict[tuple[str, bool], int] = {}
    for t in transactions:
        key = (t.branch, t.at.weekday() >= 5)
        first_sale[key] = min(first_sale.get(key, 24 * 60), t.at.hour * 60 + t.at.minute)
    for branch in {t.branch for t in transactions}:
        assert first_sale[(branch, True)] > first_sale[(branch, False)]


def test_several_transactions_can_share_a_minute(
    period: tuple[GenerationPlan, list[Transaction]],
) -> None:
    _, transactions = period
    per_minute = Counter((t.branch, t.at) for t in transactions)
    assert max(per_minute.values()) > 1


def test_card_customers_return_more_over_time_and_visit_other_branches(
    period: tuple[GenerationPlan, list[Transaction]],
) -> None:
    _, transactions = period
    seen: set[str] = set()
    branches_by_card: defaultdict[str, set[str]] = defaultdict(set)
    returning_by_week: defaultdict[int, list[bool]] = defaultdict(list)
    for t in sorted(transactions, key=lambda t: t.at.date()):
        if t.payment != "CARD":
            continue
        week = (t.at.date() - PERIOD_START).days // 7
        returning_by_week[week].append(t.card in seen)
        seen.add(t.card)
        branches_by_card[t.card].add(t.branch)

    def share(week: int) -> float:
        return sum(returning_by_week[week]) / len(returning_by_week[week])

    # Beyond the first week (when everybody is new) the share keeps climbing.
    assert share(0) < share(1) < share(3) < share(5)
    assert share(5) - share(1) > 0.1
    assert any(len(branches) >= 2 for branches in branches_by_card.values())
    assert sum(not r for r in returning_by_week[5]) > 0  # new customers keep appearing


def test_price_rise_is_visible_half_way_through(
    period: tuple[GenerationPlan, list[Transaction]],
) -> None:
    plan, transactions = period
    rise_from = plan.prices.rise_from
    assert rise_from == PERIOD_START + timedelta(days=PERIOD_DAYS // 2)
    prices: defaultdict[tuple[str, bool], set[str]] = defaultdict(set)
    for t in transactions:
        for item in t.basket:
            parts = ITEM_PARTS.match(item)
            assert parts
            product = f"{parts['size']} {parts['product']}"
            prices[(product, t.at.date() >= rise_from)].add(parts["price"])
    # One price per product on each side of the date; latte is on every menu.
    assert all(len(seen) == 1 for seen in prices.values())
    before, after = prices[("Regular Latte", False)], prices[("Regular Latte", True)]
    assert Decimal(after.pop()) > Decimal(before.pop())
    unchanged = [product for product, raised in prices if raised and "Speciality Tea" in product]
    for product in unchanged:
        assert prices[(product, True)] == prices[(product, False)]


def test_catalogue_reproduces_every_item_of_the_real_exports(samples_dir: Path) -> None:
    for sample in samples_dir.glob("*.csv"):
        for row in read_rows(sample):
            for item in row["basket"].split(", "):
                parts = ITEM_PARTS.match(item)
                assert parts, item
                product = PRODUCTS_BY_DISPLAY_NAME[parts["product"]]
                size: Size = "Large" if parts["size"] == "Large" else "Regular"
                price = PriceSchedule().price_pence(product, size, date(2021, 8, 25))
                assert basket_item(product, size, price) == item


def test_every_product_has_a_reporting_category_and_large_costs_more() -> None:
    assert {product.category for product in CATALOGUE} == set(CATEGORIES)
    for product in CATALOGUE:
        regular, large = (product.base_price_pence(size) for size in SIZES)
        assert large > regular > 0


def test_branch_profiles_differ_but_are_plausible() -> None:
    profiles = [branch_profile(name, seed=1) for name in ("Chesterfield", "Leeds", "Whitby")]
    for profile in profiles:
        assert 7 * 60 <= profile.weekday.minutes[0] <= 8 * 60
        assert 17 * 60 <= profile.weekday.minutes[-1] + 1 <= 18 * 60
    assert len({p.menu for p in profiles}) == len(profiles)


def run_cli(*args: str) -> int:
    return cli.main(["generate", *args])


@pytest.fixture
def generate_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Exercise `cafe generate` through the real entry point without importing the other
    # command groups, so this test only fails for reasons of its own.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("cafe.commands.samples",))


@pytest.mark.usefixtures("generate_only")
def test_cli_writes_one_file_per_branch_per_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    assert (
        run_cli("--branches", "2", "--days", "3", "--start", "2024-02-28", "--out", str(out_dir))
        == 0
    )
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "chesterfield_01-03-2024_09-00-00.csv",
        "chesterfield_28-02-2024_09-00-00.csv",
        "chesterfield_29-02-2024_09-00-00.csv",
        "longridge_01-03-2024_09-00-00.csv",
        "longridge_28-02-2024_09-00-00.csv",
        "longridge_29-02-2024_09-00-00.csv",
    ]
    assert "wrote 6 files" in capsys.readouterr().out


@pytest.mark.usefixtures("generate_only")
@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("--branches", "0", "--days", "1"), "--branches"),
        (("--branches", "1000", "--days", "1"), "--branches"),
        (("--branches", "1", "--days", "0"), "--days"),
        (("--branches", "1", "--days", "1", "--start", "2024-13-01"), "--start"),
        (("--branches", "1", "--days", "1", "--start", "yesterday"), "--start"),
    ],
)
def test_cli_rejects_bad_arguments_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], complaint: str
) -> None:
    assert run_cli(*args, "--out", str(tmp_path / "out")) != 0
    stderr = capsys.readouterr().err
    assert complaint in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_plan_refuses_duplicate_branches() -> None:
    with pytest.raises(GenerationError):
        GenerationPlan(("Leeds", "Leeds"), date(2024, 1, 1), 1)


@pytest.mark.usefixtures("generate_only")
def test_cli_reports_an_unwritable_output_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_directory = tmp_path / "taken"
    not_a_directory.write_text("")
    assert run_cli("--branches", "1", "--days", "1", "--out", str(not_a_directory)) != 0
    stderr = capsys.readouterr().err
    assert "cannot write" in stderr and "Traceback" not in stderr


def _read_through_the_loader(path: Path) -> tuple[FileFacts, list[dict[str, object]], int]:
    """What the loader makes of a file: facts, accepted rows, refused line count."""
    with path.open("rb") as stream:
        facts = inspect_file(stream)
        if facts.refusal is not None:
            return facts, [], 0
        accepted: list[dict[str, object]] = []
        refused = 0
        for block in read_blocks(stream, facts):
            result = validate_block(block.rows, VARIANT_RULES)
            accepted.extend(result.accepted.to_pylist())
            refused += len(result.rejected) + len(block.malformed)
    return facts, sorted(accepted, key=lambda row: int(str(row["line_number"]))), refused


VARIANT_RULES = LineRules(date(2000, 1, 1), datetime(2030, 1, 1), Decimal("10000.00"))


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[Variant, GeneratedFile]:
    out_dir = tmp_path_factory.mktemp("variants")
    return {
        variant: generate_branch_day(
            out_dir / variant.value, "Leeds", date(2024, 3, 1), seed=7, variant=variant
        )
        for variant in Variant
    }


def test_standard_variant_is_the_real_format(variants: dict[Variant, GeneratedFile]) -> None:
    assert_real_export_format(variants[Variant.STANDARD].path)


@pytest.mark.parametrize(
    ("variant", "encoding", "unknown", "absent"),
    [
        (Variant.REORDERED, "utf-8", (), ()),
        (Variant.EXTRA_COLUMN, "utf-8", ("tip",), ()),
        (Variant.NO_CUSTOMER_COLUMNS, "utf-8", (), ("name", "card_number")),
        (Variant.UTF16, "utf-16-le", (), ()),
        (Variant.EXCEL, "utf-8", (), ()),
    ],
)
def test_loadable_variants_load_the_same_sales(
    variants: dict[Variant, GeneratedFile],
    variant: Variant,
    encoding: str,
    unknown: tuple[str, ...],
    absent: tuple[str, ...],
) -> None:
    _, standard, _ = _read_through_the_loader(variants[Variant.STANDARD].path)
    facts, accepted, refused = _read_through_the_loader(variants[variant].path)
    assert (facts.encoding, facts.unknown_columns, facts.layout.absent) == (
        encoding,
        unknown,
        absent,
    )
    assert refused == 0
    assert variants[variant].rows == variants[Variant.STANDARD].rows == len(accepted) > 0
    if absent:
        for row in standard:
            row["customer_name"] = row["card_digits"] = None
    assert accepted == standard


def test_excel_variant_is_what_excel_writes(variants: dict[Variant, GeneratedFile]) -> None:
    data = variants[Variant.EXCEL].path.read_bytes()
    assert data.startswith(b'\xef\xbb\xbf"date","location","name"')
    assert data.endswith(b'"\r\n') and b"\n" not in data.replace(b"\r\n", b"")


@pytest.mark.parametrize(
    ("variant", "complaint"),
    [
        (Variant.MISSING_BASKET, "required columns missing: basket"),
        (Variant.FOREIGN, "no header names its columns"),
    ],
)
def test_refused_variants_are_refused_whole(
    variants: dict[Variant, GeneratedFile], variant: Variant, complaint: str
) -> None:
    facts, accepted, _ = _read_through_the_loader(variants[variant].path)
    assert facts.refusal is not None and complaint in facts.refusal
    assert accepted == []


def test_foreign_variant_writes_baskets_as_python_dicts(
    variants: dict[Variant, GeneratedFile],
) -> None:
    first = variants[Variant.FOREIGN].path.read_text(encoding="utf-8").splitlines()[0]
    record = next(csv.reader([first]))
    assert len(record) == 5 and record[0] == "1"
    assert record[2].startswith("[{'product': ")


@pytest.mark.usefixtures("generate_only")
def test_cli_writes_a_variant(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    args = ("--branches", "1", "--days", "1", "--variant", "utf16", "--out", str(out_dir))
    assert run_cli(*args, "--quiet") == 0
    (written,) = out_dir.iterdir()
    assert written.read_bytes().startswith(b"\xff\xfed\x00a\x00t\x00e\x00")
