"""cafe-elt: loader, local stack and CLI for the café chain's ELT platform."""

__version__ = "0.1.0"
