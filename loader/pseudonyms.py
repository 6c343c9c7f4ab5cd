"""What a batch carries about card holders beside its rows: the privacy lifecycle's share
of a load.

* `HashedRejection`: a refused line with the keyed hash of the card number it holds (its
  card column, else the first card number found anywhere in it), so that an erasure or an
  access request finds the line although its text is masked;
* `LinkedBatch`: a batch with the links between the current and the previous key's hash
  of each card it holds, recorded during a key rotation's overlap window in
  `raw.card_links` (never the card).

Both extend the types of `loader.batches` and `loader.validation`, so a writer that knows
nothing of them still writes the rows and the refusals; `card_hash_of` and `links_of` read
them from any batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import pyarrow as pa

from loader.batches import CleanBatch
from loader.validation import RejectedRow

CARD_LINKS_SCHEMA: Final = pa.schema(
    [
        pa.field("card_hash", pa.string(), nullable=False),
        pa.field("card_key_version", pa.string(), nullable=False),
        pa.field("previous_card_hash", pa.string(), nullable=False),
        pa.field("previous_key_version", pa.string(), nullable=False),
    ]
)
NO_LINKS: Final = CARD_LINKS_SCHEMA.empty_table()


@dataclass(frozen=True, slots=True)
class HashedRejection(RejectedRow):
    """A refused line and the keyed hash (with its key version) of the card it holds."""

    card_hash: str | None = None
    card_key_version: str | None = None


@dataclass(frozen=True, slots=True)
class LinkedBatch(CleanBatch):
    """A batch and the links (`CARD_LINKS_SCHEMA`) between two key versions' hashes of the
    cards first seen in it."""

    links: pa.Table = field(default_factory=CARD_LINKS_SCHEMA.empty_table)


def card_hash_of(row: RejectedRow) -> tuple[str | None, str | None]:
    """(card hash, key version) of a refused line; (None, None) when it holds no card."""
    if isinstance(row, HashedRejection):
        return row.card_hash, row.card_key_version
    return None, None


def links_of(batch: CleanBatch) -> pa.Table:
    """The card links a batch carries (none unless it is a `LinkedBatch`)."""
    return batch.links if isinstance(batch, LinkedBatch) else NO_LINKS
