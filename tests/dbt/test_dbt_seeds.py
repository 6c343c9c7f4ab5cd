"""The product category seed agrees with the loader's catalogue (which the generator sells)."""

from __future__ import annotations

import csv

from cafe.catalogue import CATEGORIES, CATEGORY_BY_PRODUCT_NAME
from cafe.dbt_project import dbt_project_dir


def test_seed_categorises_every_catalogue_product_the_same_way() -> None:
    with (dbt_project_dir() / "seeds" / "product_categories.csv").open(newline="") as seed:
        seeded = {row["product_name"]: row["product_category"] for row in csv.DictReader(seed)}
    assert {name: seeded.get(name) for name in CATEGORY_BY_PRODUCT_NAME} == dict(
        CATEGORY_BY_PRODUCT_NAME
    )
    assert set(seeded.values()) <= set(CATEGORIES)
