"""Realistic branch till exports, byte-for-byte in the format of the real ones.

Every branch-day is one CSV named `branch_dd-mm-YYYY_09-00-00.csv` (the real exports carry
the trading date and a 09:00 export time), CRLF line ends, minimal quoting, totals written
as the float of the exact pence sum (`5.2`, `12.95`, `5.0`), empty card number for cash.

The shape of the data is what the marts are meant to reveal: opening hours per branch,
later and differently busy weekends, morning and lunch peaks, baskets of one to six drinks
(repeats allowed), about 30% cash, a price rise part-way through the period, and card
customers who come back (more of them as the period goes on), sometimes to another branch.

Output is a pure function of the arguments: each branch-day draws from its own
`random.Random` seeded by (seed, branch, date), and a customer's card number and name are a
hash of (seed, home branch, serial), so the only state carried from day to day is one
customer counter per branch. Rows are written as they are drawn; at most one branch-day of
minute stamps is held in memory.
"""

from __future__ import annotations

import csv
import enum
import hashlib
import math
import random
from bisect import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Final

from cafe.catalogue import CATALOGUE, SIZES, PriceSchedule, Product, basket_item
from loader.errors import CafeError

HEADER: Final = ("date", "location", "name", "basket", "total", "payment_type", "card_number")
EXPORT_TIME: Final = "09-00-00"

# Real-sounding UK market towns; the first two are the branches of the real samples.
TOWNS: Final[tuple[str, ...]] = tuple(
    """
    Chesterfield Longridge Leeds Uppingham Whitby Ludlow Kendal Buxton Harrogate Skipton Ripon
    Malton Oakham Stamford Bakewell Matlock Keswick Penrith Hexham Alnwick Morpeth Richmond
    Thirsk Beverley Selby Otley Ilkley Settle Clitheroe Lancaster Ulverston Sedbergh Helmsley
    Pickering Knaresborough Wetherby Holmfirth Hebden Todmorden Glossop Ashbourne Belper Wirksworth
    Southwell Newark Grantham Louth Horncastle Melton Lutterworth Ledbury Tewkesbury
    Cirencester Tetbury Stroud Marlborough Devizes Frome Wells Totnes Bridport Lewes Rye
    """.split()
)
MAX_BRANCHES: Final = len(TOWNS)

FIRST_NAMES: Final[tuple[str, ...]] = tuple(
    """
    James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard
    Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty
    Anthony Sandra Mark Margaret Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua
    Michelle Kenneth Carol George Amanda Kevin Dorothy Brian Melissa Edward Deborah Ronald
    Stephanie Timothy Rebecca Jason Sharon Jeffrey Laura Ryan Cynthia Jacob Amy Gary Kathleen
    Nicholas Angela Eric Shirley Jonathan Anna Stephen Brenda Larry Pamela Justin Emma Scott
    Nicole Brandon Helen Benjamin Samantha Samuel Katherine Gregory Christine Alexander Debra
    Frank Rachel Patrick Carolyn Raymond Janet Jack Catherine Dennis Maria Jerry Heather Tyler
    Diane Aaron Ruth Jose Julie Adam Olivia Nathan Joyce Henry Virginia Douglas Victoria Zachary
    Kelly Peter Lauren Kyle Christina Ethan Joan Walter Evelyn Noah Judith Jeremy Megan Christian
    Andrea Keith Cheryl Roger Hannah Terry Jacqueline Gerald Martha Harold Gloria Sean Teresa
    Austin Ann Carl Sara Arthur Madison Lawrence Frances Dylan Kathryn Jesse Janice Jordan Jean
    Bryan Abigail Billy Alice Joe Judy Bruce Sophia Gabriel Grace Logan Denise Albert Amber
    """.split()
)
LAST_NAMES: Final[tuple[str, ...]] = tuple(
    """
    Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
    Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris
    Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
    Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips
    Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers
    Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson
    Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo
    Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell
    Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson
    Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant Herrera
    Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison
    Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker
    Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason
    Dixon Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox
    Warren Mills Meyer Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan
    Copeland Drake Sparrow Keller Ingle Lafarge Spinks Mossien Maddox Figueroa Coles
    """.split()
)

# Basket sizes 1-6, weighted like the real exports (pairs most common, six items rare).
BASKET_SIZE_WEIGHTS: Final = {1: 62, 2: 73, 3: 55, 4: 35, 5: 27, 6: 14}
# One entry per unit of weight, so a uniform index is an exact weighted draw.
_BASKET_SIZE_TABLE: Final = tuple(
    size for size, weight in BASKET_SIZE_WEIGHTS.items() for _ in range(weight)
)
_BASKET_SIZE_TABLE_LEN: Final = len(_BASKET_SIZE_TABLE)
_FIRST_NAME_COUNT: Final = len(FIRST_NAMES)
_LAST_NAME_COUNT: Final = len(LAST_NAMES)
LARGE_SHARE: Final = 0.45
CROSS_BRANCH_SHARE: Final = 0.08
# Returning card customers: a small share at the start of the period, rising towards a
# plateau as each branch builds a regular clientele.
RETURNING_SHARE_START: Final = 0.15
RETURNING_SHARE_PLATEAU: Final = 0.70
RETURNING_SHARE_DAYS: Final = 90.0
# Monday..Sunday busyness relative to Wednesday (weekends are scaled per branch too).
WEEKDAY_FACTORS: Final = (0.92, 0.97, 1.0, 1.03, 1.12, 1.0, 1.0)

_MINUTE_TEXT: Final = tuple(f"{m // 60:02d}:{m % 60:02d}" for m in range(24 * 60))

Row = tuple[str, str, str, str, str, str, str]


class GenerationError(CafeError):
    """The requested sample data cannot be generated (bad branch count, dates, ...)."""


@dataclass(frozen=True, slots=True)
class TradingDay:
    """When a branch opens on one kind of day, and how trade is spread over its minutes."""

    minutes: tuple[int, ...]
    cum_weights: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class BranchProfile:
    """Everything fixed about a branch: hours, volumes, menu and how its customers pay."""

    name: str
    weekday: TradingDay
    weekend: TradingDay
    weekday_transactions: float
    weekend_factor: float
    cash_share: float
    menu: tuple[tuple[Product, float], ...]


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    """One written export: its path, how many transactions, and the distinct cards used."""

    path: Path
    branch: str
    day: date
    rows: int
    card_numbers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GenerationPlan:
    """A run: which branches, which days, which seed, which prices."""

    branches: tuple[str, ...]
    start: date
    days: int
    seed: int = 0
    prices: PriceSchedule = field(default_factory=PriceSchedule)

    def __post_init__(self) -> None:
        if not self.branches:
            raise GenerationError("at least one branch is needed")
        if len(set(self.branches)) != len(self.branches):
            raise GenerationError("branch names must be distinct")
        if self.days < 1:
            raise GenerationError(f"--days must be at least 1 (got {self.days})")

    @classmethod
    def for_run(cls, branch_count: int, days: int, start: date, seed: int) -> GenerationPlan:
        """The CLI's plan: the first N towns, and prices rising half-way through the period."""
        if not 1 <= branch_count <= MAX_BRANCHES:
            raise GenerationError(
                f"--branches must be between 1 and {MAX_BRANCHES} (got {branch_count})"
            )
        if days < 1:
            raise GenerationError(f"--days must be at least 1 (got {days})")
        rise_from = start + timedelta(days=days // 2) if days >= 2 else None
        return cls(TOWNS[:branch_count], start, days, seed, PriceSchedule(rise_from))

    def dates(self) -> Iterator[date]:
        return (self.start + timedelta(days=offset) for offset in range(self.days))

    @property
    def file_count(self) -> int:
        return len(self.branches) * self.days


def export_file_name(branch: str, day: date) -> str:
    """`chesterfield_25-08-2021_09-00-00.csv`: lower-case branch, trading date, export time."""
    return f"{branch.lower().replace(' ', '-')}_{day:%d-%m-%Y}_{EXPORT_TIME}.csv"


def _peak(minute: int, centre: int, spread: float, height: float) -> float:
    return height * math.exp(-0.5 * ((minute - centre) / spread) ** 2)


def _trading_day(opens: int, closes: int, *, weekend: bool) -> TradingDay:
    # Weekday trade is commuters (sharp 8-9 peak) and office lunches; weekend mornings start
    # later and softer and lunch carries the day.
    morning = (10 * 60, 1.0) if weekend else (8 * 60 + 30, 1.8)
    lunch_height = 1.9 if weekend else 1.5
    minutes = tuple(range(opens, closes))
    weights = [
        0.35
        + _peak(m, morning[0], 40.0, morning[1])
        + _peak(m, 12 * 60 + 30, 45.0, lunch_height)
        + _peak(m, 15 * 60 + 30, 50.0, 0.25)
        for m in minutes
    ]
    cum: list[float] = []
    running = 0.0
    for weight in weights:
        running += weight
        cum.append(running)
    return TradingDay(minutes, tuple(cum))


def branch_profile(name: str, seed: int) -> BranchProfile:
    """The fixed character of a branch, derived from its name and the seed alone."""
    rng = random.Random(f"{seed}/branch/{name}")
    weekday_opens = rng.choice((7 * 60, 7 * 60, 7 * 60 + 30, 8 * 60))
    weekday_closes = rng.choice((17 * 60, 17 * 60 + 30, 18 * 60))
    weekend_opens = min(weekday_opens + 60, 9 * 60)
    weekend_closes = weekday_closes - rng.choice((0, 60))
    # Core coffees are on every menu; the rest of the catalogue varies by branch, as the real
    # exports show (one branch sells iced lattes and no tea, another the opposite).
    menu = tuple(
        (product, rng.lognormvariate(0.0, 0.5))
        for product in CATALOGUE
        if product.name in ("Latte", "Flat white") or rng.random() < 0.7
    )
    return BranchProfile(
        name=name,
        weekday=_trading_day(weekday_opens, weekday_closes, weekend=False),
        weekend=_trading_day(weekend_opens, weekend_closes, weekend=True),
        weekday_transactions=rng.uniform(170.0, 330.0),
        # Office-district branches go quiet at weekends; market towns get busier.
        weekend_factor=rng.choice((0.6, 0.8, 1.15, 1.3)),
        cash_share=rng.uniform(0.25, 0.35),
        menu=menu,
    )


class CustomerPool:
    """Card customers of every branch, numbered per home branch in order of first visit.

    A customer is (home branch, serial); the card number and name are a hash of that and the
    seed, so the pool is a counter per branch. Returning customers are drawn only from those
    who visited before the current day, which keeps each branch-day independent of the order
    in which the branches of that day are generated.
    """

    def __init__(self, branch_count: int, seed: int) -> None:
        self._seed = seed
        self._known_before_today = [0] * branch_count
        self._new_today = [0] * branch_count

    @staticmethod
    def returning_share(day_index: int) -> float:
        growth = 1.0 - math.exp(-day_index / RETURNING_SHARE_DAYS)
        return RETURNING_SHARE_START + (RETURNING_SHARE_PLATEAU - RETURNING_SHARE_START) * growth

    def customer(
        self, rng: random.Random, branch_index: int, returning_share: float
    ) -> tuple[str, str]:
        """(name, card number) of the next card payer at this branch."""
        if rng.random() < returning_share:
            home = branch_index
            branch_count = len(self._known_before_today)
            if branch_count > 1 and rng.random() < CROSS_BRANCH_SHARE:
                home = (branch_index + 1 + rng.randrange(branch_count - 1)) % branch_count
            known = self._known_before_today[home]
            if known:
                # Recent customers are likelier to come back than those first seen long ago.
                return self._identity(home, known - 1 - int(known * rng.random() ** 2))
        serial = self._known_before_today[branch_index] + self._new_today[branch_index]
        self._new_today[branch_index] += 1
        return self._identity(branch_index, serial)

    def close_day(self) -> None:
        for index, new in enumerate(self._new_today):
            self._known_before_today[index] += new
            self._new_today[index] = 0

    def _identity(self, home: int, serial: int) -> tuple[str, str]:
        return _customer_identity(self._seed, home, serial)


# Returning customers are mostly recent ones, so a modest cache avoids most re-hashing.
@lru_cache(maxsize=1 << 16)
def _customer_identity(seed: int, home: int, serial: int) -> tuple[str, str]:
    """(name, 16-digit card number) of a customer: a keyed hash, stable for the seed."""
    digest = hashlib.blake2b(f"{seed}/{home}/{serial}".encode(), digest_size=16).digest()
    card = 10**15 + int.from_bytes(digest[:8], "big") % (9 * 10**15)
    first = FIRST_NAMES[int.from_bytes(digest[8:12], "big") % _FIRST_NAME_COUNT]
    last = LAST_NAMES[int.from_bytes(digest[12:16], "big") % _LAST_NAME_COUNT]
    return f"{first} {last}", str(card)


def _expected_transactions(profile: BranchProfile, day: date) -> float:
    weekday = day.weekday()
    volume = profile.weekday_transactions * WEEKDAY_FACTORS[weekday]
    if weekday >= 5:
        volume *= profile.weekend_factor
    # A gentle summer high and winter low.
    return volume * (1.0 + 0.08 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 196) / 365))


def _priced_menu(
    profile: BranchProfile, day: date, prices: PriceSchedule
) -> tuple[tuple[str, ...], tuple[int, ...], tuple[float, ...]]:
    """Basket texts, prices and cumulative popularity of every (product, size) on the menu."""
    texts: list[str] = []
    pence: list[int] = []
    cum_weights: list[float] = []
    running = 0.0
    for product, popularity in profile.menu:
        for size in SIZES:
            price = prices.price_pence(product, size, day)
            texts.append(basket_item(product, size, price))
            pence.append(price)
            running += popularity * (LARGE_SHARE if size == "Large" else 1.0 - LARGE_SHARE)
            cum_weights.append(running)
    return tuple(texts), tuple(pence), tuple(cum_weights)


def branch_day_rows(
    profile: BranchProfile,
    branch_index: int,
    day: date,
    day_index: int,
    customers: CustomerPool,
    prices: PriceSchedule,
    seed: int,
) -> Iterator[Row]:
    """The transactions of one branch on one day, in time order."""
    rng = random.Random(f"{seed}/day/{profile.name}/{day.isoformat()}")
    trading = profile.weekend if day.weekday() >= 5 else profile.weekday
    expected = _expected_transactions(profile, day)
    count = max(0, round(rng.gauss(expected, math.sqrt(expected))))
    minutes = sorted(rng.choices(trading.minutes, cum_weights=trading.cum_weights, k=count))
    menu_texts, menu_pence, menu_cum = _priced_menu(profile, day, prices)
    menu_total, menu_last = menu_cum[-1], len(menu_cum) - 1
    date_prefix = f"{day:%d/%m/%Y} "
    location, cash_share = profile.name, profile.cash_share
    returning_share = customers.returning_share(day_index)
    draw = rng.random
    # The hot loop of a 10-million-row run: weighted draws are inlined as bisects over
    # cumulative weights (what `Random.choices` does, without its per-call overhead).
    for minute in minutes:
        basket_size = _BASKET_SIZE_TABLE[int(draw() * _BASKET_SIZE_TABLE_LEN)]
        picks = [bisect(menu_cum, draw() * menu_total, 0, menu_last) for _ in range(basket_size)]
        # Float of the exact pence sum: its repr is the samples' `5.2`, `12.95`, `5.0`.
        total = str(sum([menu_pence[i] for i in picks]) / 100)
        basket = ", ".join([menu_texts[i] for i in picks])
        if draw() < cash_share:
            first = FIRST_NAMES[int(draw() * _FIRST_NAME_COUNT)]
            name = f"{first} {LAST_NAMES[int(draw() * _LAST_NAME_COUNT)]}"
            payment, card = "CASH", ""
        else:
            name, card = customers.customer(rng, branch_index, returning_share)
            payment = "CARD"
        yield (date_prefix + _MINUTE_TEXT[minute], location, name, basket, total, payment, card)


def export_line(row: Row) -> str:
    """One CRLF-terminated CSV line, byte-identical to `csv.writer` with QUOTE_MINIMAL.

    Only the basket can hold a delimiter (items are joined by `, `); branch, customer and
    product names are checked at import to contain no comma, quote or line break. Writing
    lines directly is several times faster than `csv.writer`, which scans every character.
    """
    date_text, location, name, basket, total, payment, card = row
    if "," in basket:
        basket = f'"{basket}"'
    return f"{date_text},{location},{name},{basket},{total},{payment},{card}\r\n"


def _check_csv_safe(texts: Iterable[str]) -> None:
    unsafe = [text for text in texts if any(char in text for char in ',"\r\n')]
    if unsafe:
        raise RuntimeError(f"names would need CSV quoting: {unsafe}")


_check_csv_safe((*TOWNS, *FIRST_NAMES, *LAST_NAMES, *(p.display_name for p in CATALOGUE), *SIZES))


class Variant(enum.StrEnum):
    """What a branch's export looks like: the real format, or one of the variants seen (or
    feared) in the field, for tests and demos of the loader's format handling."""

    STANDARD = "standard"  # the real format
    REORDERED = "reordered"  # same columns, another order (a manager's spreadsheet)
    EXTRA_COLUMN = "extra-column"  # new till firmware adds a `tip` column (drift)
    NO_CUSTOMER_COLUMNS = "no-customer-columns"  # a branch exporting no names or card numbers
    MISSING_BASKET = "missing-basket"  # a header without the basket column: refused
    FOREIGN = "foreign"  # another system's file (5 columns, baskets as dicts): refused
    UTF16 = "utf16"  # "Unicode text": UTF-16 LE with a byte-order mark
    EXCEL = "excel"  # re-saved by Excel: UTF-8 byte-order mark, CRLF, every field quoted


VARIANTS: Final = tuple(variant.value for variant in Variant)
REORDERED_HEADER: Final = (
    "total",
    "card_number",
    "date",
    "basket",
    "name",
    "payment_type",
    "location",
)
NO_CUSTOMER_HEADER: Final = ("date", "location", "basket", "total", "payment_type")
MISSING_BASKET_HEADER: Final = tuple(name for name in HEADER if name != "basket")


def _tip(row: Row) -> str:
    # Deterministic from the row: about a third of card payers leave 50p.
    return "0.50" if row[5] == "CARD" and len(row[3]) % 3 == 0 else "0.00"


def _foreign_record(number: int, row: Row) -> list[str]:
    """Another system's view of a sale: id, customer, basket as Python dicts, total, method."""
    items = []
    for item in row[3].split(", "):
        size, _, rest = item.partition(" ")
        product, _, price = rest.rpartition(" - ")
        items.append({"product": product, "size": size, "price": float(price)})
    return [str(number), row[2], repr(items), row[4], row[5].lower()]


def _variant_records(variant: Variant, rows: Iterable[Row]) -> Iterator[list[str]]:
    """Header (if any) and records of a non-standard variant, in file column order."""
    if variant is Variant.FOREIGN:
        for number, row in enumerate(rows, start=1):
            yield _foreign_record(number, row)
        return
    columns: tuple[str, ...] = HEADER
    if variant is Variant.REORDERED:
        columns = REORDERED_HEADER
    elif variant is Variant.NO_CUSTOMER_COLUMNS:
        columns = NO_CUSTOMER_HEADER
    elif variant is Variant.MISSING_BASKET:
        columns = MISSING_BASKET_HEADER
    positions = [HEADER.index(name) for name in columns]
    extra = variant is Variant.EXTRA_COLUMN
    yield [*columns, "tip"] if extra else list(columns)
    for row in rows:
        record = [row[position] for position in positions]
        yield [*record, _tip(row)] if extra else record


def write_export(
    path: Path, rows: Iterable[Row], variant: Variant = Variant.STANDARD
) -> tuple[int, tuple[str, ...]]:
    """Write generated rows as an export (by default the real format), atomically.

    Returns the row count and the distinct card numbers the file holds, in order of first
    use (none for variants without a card number column).
    """
    cards: dict[str, None] = {}
    count = 0

    def counted(source: Iterable[Row]) -> Iterator[Row]:
        nonlocal count
        for row in source:
            count += 1
            if row[6]:
                cards[row[6]] = None
            yield row

    partial = path.with_name(path.name + ".part")
    if variant is Variant.STANDARD:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            write = handle.write
            write(",".join(HEADER) + "\r\n")
            for row in counted(rows):
                write(export_line(row))
    else:
        # Little-endian UTF-16 whatever the machine, so the bytes are the same everywhere.
        encoding = {Variant.UTF16: "utf-16-le", Variant.EXCEL: "utf-8"}.get(variant, "utf-8")
        source = Variant.STANDARD if variant in (Variant.UTF16, Variant.EXCEL) else variant
        with partial.open("w", encoding=encoding, newline="") as handle:
            if variant in (Variant.UTF16, Variant.EXCEL):
                handle.write("\ufeff")  # the byte-order mark both write
            if variant is Variant.EXCEL:
                writer = csv.writer(handle, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
            else:
                writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerows(_variant_records(source, counted(rows)))
    partial.replace(path)
    has_cards = variant not in (Variant.NO_CUSTOMER_COLUMNS, Variant.FOREIGN)
    return count, tuple(cards) if has_cards else ()


def iter_generated_files(
    plan: GenerationPlan, out_dir: Path, variant: Variant = Variant.STANDARD
) -> Iterator[GeneratedFile]:
    """Write the plan's files day by day (every branch of a day, then the next day)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    profiles = [branch_profile(name, plan.seed) for name in plan.branches]
    customers = CustomerPool(len(profiles), plan.seed)
    for day_index, day in enumerate(plan.dates()):
        for branch_index, profile in enumerate(profiles):
            path = out_dir / export_file_name(profile.name, day)
            rows = branch_day_rows(
                profile, branch_index, day, day_index, customers, plan.prices, plan.seed
            )
            count, cards = write_export(path, rows, variant)
            yield GeneratedFile(path, profile.name, day, count, cards)
        customers.close_day()


def generate_branch_day(
    out_dir: Path,
    branch: str,
    day: date,
    seed: int = 0,
    prices: PriceSchedule | None = None,
    variant: Variant = Variant.STANDARD,
) -> GeneratedFile:
    """One branch's export for one day, as a first day of trading (every card customer new).

    Meant for tests elsewhere in the project: deterministic for (branch, day, seed, variant).
    """
    plan = GenerationPlan((branch,), day, 1, seed, prices or PriceSchedule())
    return next(iter_generated_files(plan, out_dir, variant))


def estimated_rows(plan: GenerationPlan) -> int:
    """A cheap estimate of the rows a plan writes, for progress bars and sizing."""
    profiles = [branch_profile(name, plan.seed) for name in plan.branches]
    return round(sum(p.weekday_transactions for p in profiles) * plan.days)


def parse_start(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise GenerationError(f"--start must be a date as YYYY-MM-DD (got {text!r})") from None
