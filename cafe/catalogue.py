"""The café chain's product catalogue and price schedule.

Product names, flavours and regular/large prices are the union of what the real till
exports show (see the samples next to the architecture notes), plus a few drinks every
café of this kind sells. Prices are held in pence so that sums are exact; the exports
write them with two decimals. Each product carries the reporting category the marts use,
so dbt and dashboard authors can take the mapping from here rather than re-deriving it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Final, Literal

Size = Literal["Regular", "Large"]
SIZES: Final[tuple[Size, ...]] = ("Regular", "Large")

COFFEE: Final = "Coffee"
ICED_COFFEE: Final = "Iced coffee"
TEA: Final = "Tea"
FRAPPES: Final = "Frappes"
SMOOTHIES: Final = "Smoothies"
MILK: Final = "Milk"
HOT_CHOCOLATE: Final = "Hot chocolate"
OTHER: Final = "Other"
CATEGORIES: Final[tuple[str, ...]] = (
    COFFEE,
    ICED_COFFEE,
    TEA,
    FRAPPES,
    SMOOTHIES,
    MILK,
    HOT_CHOCOLATE,
)


@dataclass(frozen=True, slots=True)
class Product:
    """One sellable drink, e.g. `Flavoured latte - Hazelnut`; sizes share the product."""

    name: str
    flavour: str | None
    category: str
    regular_pence: int
    large_step_pence: int

    @property
    def display_name(self) -> str:
        """The product as the basket spells it, without size or price."""
        return self.name if self.flavour is None else f"{self.name} - {self.flavour}"

    def base_price_pence(self, size: Size) -> int:
        return self.regular_pence + (self.large_step_pence if size == "Large" else 0)


def _family(
    name: str, category: str, regular_pence: int, large_step_pence: int, *flavours: str
) -> tuple[Product, ...]:
    if not flavours:
        return (Product(name, None, category, regular_pence, large_step_pence),)
    return tuple(
        Product(name, flavour, category, regular_pence, large_step_pence) for flavour in flavours
    )


# Prices of products seen in the real exports are copied from them (Large = Regular + a fixed
# step per product family); the rest are priced in line with those.
CATALOGUE: Final[tuple[Product, ...]] = (
    *_family("Latte", COFFEE, 215, 30),
    *_family("Flat white", COFFEE, 215, 30),
    *_family("Cappuccino", COFFEE, 215, 30),
    *_family("Americano", COFFEE, 195, 30),
    *_family("Mocha", COFFEE, 230, 40),
    *_family("Flavoured latte", COFFEE, 255, 30, "Hazelnut", "Vanilla", "Caramel"),
    *_family("Flavoured iced latte", ICED_COFFEE, 275, 50, "Caramel", "Hazelnut", "Vanilla"),
    *_family("Speciality Tea", TEA, 130, 30, "Earl Grey", "English Breakfast", "Peppermint"),
    *_family("Glass of milk", MILK, 70, 40),
    *_family("Hot chocolate", HOT_CHOCOLATE, 220, 40),
    *_family("Frappes", FRAPPES, 275, 50, "Strawberries & Cream", "Chocolate Cookie", "Coffee"),
    *_family("Smoothies", SMOOTHIES, 200, 50, "Glowing Greens", "Berry Beautiful", "Carrot Kick"),
)

PRODUCTS_BY_DISPLAY_NAME: Final = MappingProxyType({p.display_name: p for p in CATALOGUE})

# Product name (without flavour) -> category, for models that split the basket text.
CATEGORY_BY_PRODUCT_NAME: Final = MappingProxyType({p.name: p.category for p in CATALOGUE})

# The price rise that the generator puts part-way through a generated period: coffees go up
# by 10p and the cold blended drinks by 20p, on both sizes; tea, milk and smoothies stay.
PRICE_RISE_PENCE_BY_CATEGORY: Final = MappingProxyType(
    {COFFEE: 10, ICED_COFFEE: 20, FRAPPES: 20, HOT_CHOCOLATE: 10}
)


def category_of(product_name: str) -> str:
    """The reporting category of a product name such as `Flavoured latte` (`Other` if unknown)."""
    return CATEGORY_BY_PRODUCT_NAME.get(product_name, OTHER)


@dataclass(frozen=True, slots=True)
class PriceSchedule:
    """Catalogue prices, raised from `rise_from` (inclusive) by the category increments."""

    rise_from: date | None = None

    def is_raised(self, day: date) -> bool:
        return self.rise_from is not None and day >= self.rise_from

    def price_pence(self, product: Product, size: Size, day: date) -> int:
        rise = PRICE_RISE_PENCE_BY_CATEGORY.get(product.category, 0) if self.is_raised(day) else 0
        return product.base_price_pence(size) + rise


def format_pence(pence: int) -> str:
    """Price as the basket writes it: always two decimals (`0.70`, `2.45`)."""
    return f"{pence // 100}.{pence % 100:02d}"


def basket_item(product: Product, size: Size, price_pence: int) -> str:
    """One basket entry, e.g. `Large Flavoured latte - Hazelnut - 2.85`."""
    return f"{size} {product.display_name} - {format_pence(price_pence)}"
