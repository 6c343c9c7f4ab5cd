"""One card holder as the warehouse knows them: the hashes of their card.

A card is hashed with every key version still held (the current key, and the previous one
until it is retired); the links recorded during earlier rotations' overlap windows lead
from those hashes to the hashes the card had under keys already destroyed
(`raw.card_links`, followed in both directions until nothing new appears). What the
warehouse holds about the card is what it holds under any of these hashes.

A refused line loaded before refused lines kept a card hash carries only the masked form of
the number: as many stars as the number has digits but four, then its last four digits
(`loader.cards`). `masked_line_pattern` finds that form for an erasure, which masks such
lines whoever they belong to (a one in ten thousand chance per other card of the same
length); an access request never shows them, since they may be someone else's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from loader.contract import normalise_card_number
from loader.errors import CafeError
from loader.hashing import CardKeys, hash_card
from loader.privacy.store import SqlStore, Statement, in_list

# Links are followed at most this many rotations back (a safety stop, never reached by a
# warehouse that rotates yearly for a century).
MAX_LINK_DEPTH: Final = 100


class NotACardNumber(CafeError):
    """What was given as a card number is not one (the message never repeats it)."""


def card_digits(text: str) -> str:
    """The card's digits (12-19, separators dropped); never echoes `text` in an error."""
    digits = normalise_card_number(text.strip())
    if digits is None:
        raise NotACardNumber(
            "the card number must be 12-19 digits (spaces, dashes, dots or slashes between"
            " them are fine)"
        )
    return digits


@dataclass(frozen=True)
class CardHolder:
    """The hashes of one card: under the keys held now, and those linked to them."""

    hashes: tuple[str, ...]
    held_versions: tuple[str, ...]

    @property
    def linked_count(self) -> int:
        """Hashes found through links (under keys no longer held)."""
        return len(self.hashes) - len(self.held_versions)


def resolve_holder(store: SqlStore, keys: CardKeys, digits: str) -> CardHolder:
    """The hashes under which the warehouse may hold `digits`."""
    found = {hash_card(key, digits) for key in keys.held}
    frontier = set(found)
    for _ in range(MAX_LINK_DEPTH):
        if not frontier:
            break
        listed, params = in_list("hash", sorted(frontier))
        rows = store.query(
            Statement(
                'select card_hash, previous_card_hash from "raw".card_links'
                f" where card_hash in {listed} or previous_card_hash in {listed}",
                params,
            )
        )
        frontier = {str(value) for row in rows for value in row} - found
        found |= frontier
    return CardHolder(tuple(sorted(found)), tuple(key.version for key in keys.held))


def masked_line_pattern(digits: str) -> str:
    """A POSIX regular expression for the masked form of `digits` in a refused line.

    Both masks keep the last four digits: `mask_card_numbers` writes one star per other
    digit, `mask_all_digits` (the card column) keeps the separators between the stars.
    """
    stars = len(digits) - 4
    return f"(^|[^*0-9])([*][^*0-9]{{0,3}}){{{stars}}}{digits[-4:]}([^0-9]|$)"
