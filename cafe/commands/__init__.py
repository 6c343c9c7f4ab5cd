"""Subcommand groups of the `cafe` CLI; each module exposes `register(subparsers)`."""
