"""`cafe`: the command line of cafe-elt.

Each group of subcommands lives in its own module under `cafe.commands` and registers
itself through `register(subparsers)`; this module only assembles them and turns expected
failures into one clear line and a non-zero exit code instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from loader.errors import CafeError

COMMAND_MODULES = (
    "cafe.commands.stack",
    "cafe.commands.samples",
    "cafe.commands.load",
    "cafe.commands.build",
    "cafe.commands.report",
    "cafe.commands.pipeline",
    "cafe.commands.privacy",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cafe",
        description="cafe-elt: load café till exports into a tested warehouse.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


CLI_EXTRA_HINT = "pip install 'cafe-elt[cli]'"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except ModuleNotFoundError as missing:
        # `pip install cafe-elt` alone installs what Lambda runs, not the command line.
        print(
            f"cafe: the command line needs {missing.name!r}, which is not installed;"
            f" install the command line with {CLI_EXTRA_HINT}",
            file=sys.stderr,
        )
        return 1
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CafeError as error:
        print(f"cafe {args.command}: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"cafe {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
