"""`cafe report`: the business dashboard as a static HTML page with charts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from loader.settings import load_settings, state_dir


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="render the business dashboard's panels into a static HTML page",
        description=(
            "Run the 'Café sales' dashboard queries over the whole period in the marts and "
            "write index.html with SVG charts (no Grafana needed)."
        ),
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: .local/report/)"
    )
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from cafe.report import render_report  # matplotlib is slow to import: only when needed

    out_dir: Path = args.out or state_dir() / "report"
    index = render_report(load_settings(), out_dir)
    print(f"report written to {index}")
    return 0
