"""Errors that the CLI reports as one clear line (no traceback)."""


class CafeError(Exception):
    """An expected failure with a message meant for the person at the terminal."""

    exit_code = 1


class ConfigurationError(CafeError):
    """A setting is missing or invalid."""


class MissingCardKey(ConfigurationError):
    """The card-hash key file is not there (and is never re-created silently)."""


class CardKeyMismatch(ConfigurationError):
    """The card-hash key is not the one the warehouse recorded for its version."""

    def __init__(self, version: str, recorded_on: str | None = None) -> None:
        since = f" on {recorded_on}" if recorded_on else ""
        super().__init__(
            f"the card-hash key in use for version {version!r} is not the key this warehouse"
            f" recorded for that version{since}; nothing was loaded. Restore the original key"
            " (the key file, or the Secrets Manager secret), or start a new key version with"
            " `cafe rotate-key`"
        )
