"""Errors that the CLI reports as one clear line (no traceback)."""


class CafeError(Exception):
    """An expected failure with a message meant for the person at the terminal."""

    exit_code = 1


class ConfigurationError(CafeError):
    """A setting is missing or invalid."""
