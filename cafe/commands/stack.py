"""`cafe up`, `cafe down`, `cafe status`, `cafe db-url`: the local stack."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from cafe import stack
from cafe.commands.build import prepare_plain_dbt
from cafe.commands.load import print_recent_loads
from cafe.stack import StackError
from loader.settings import load_settings

console = Console()


def register(subparsers: Any) -> None:
    up = subparsers.add_parser("up", help="start the local stack (PostgreSQL, S3+SQS)")
    up.set_defaults(func=run_up)
    down = subparsers.add_parser("down", help="stop the local stack (data is kept)")
    down.set_defaults(func=run_down)
    status = subparsers.add_parser("status", help="what runs where, and the latest loads")
    status.add_argument("--limit", type=int, default=10, help="recent loads to show")
    status.set_defaults(func=run_status)
    db_url = subparsers.add_parser("db-url", help="print the warehouse's libpq URL")
    db_url.add_argument(
        "--reporting", action="store_true", help="the read-only reporting role's URL"
    )
    db_url.set_defaults(func=run_db_url)


def run_up(args: argparse.Namespace) -> int:
    result = stack.up()
    for name in result.started:
        console.print(f"[green]started[/] {name}")
    for name in result.reused:
        console.print(f"[dim]already running[/] {name}")
    if result.recovered_stale_pid:
        console.print("[yellow]recovered[/] a stale PostgreSQL pid file from a crashed server")
    if result.created_key:
        console.print("[green]created[/] the local card-hash key")
    prepare_plain_dbt(load_settings())  # a plain `dbt` in dbt_project/ reaches this stack
    _print_components()
    return 0


def run_down(args: argparse.Namespace) -> int:
    stopped = stack.down()
    console.print("stopped " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


def _print_components() -> None:
    table = Table(title="local stack", title_justify="left")
    for column in ("component", "state", "where", "detail"):
        table.add_column(column)
    for component in stack.status():
        state = "[green]running[/]" if component.running else "[red]stopped[/]"
        if component.name == "card key":
            state = "[green]present[/]" if component.running else "[red]missing[/]"
        table.add_row(component.name, state, component.where, component.detail)
    console.print(table)


def run_status(args: argparse.Namespace) -> int:
    _print_components()
    if any(c.running for c in stack.status() if c.name == "postgres"):
        print_recent_loads(load_settings(), args.limit)
    return 0


def run_db_url(args: argparse.Namespace) -> int:
    if args.reporting:
        url = load_settings().reporting_database_url
        if not url:
            raise StackError("no reporting URL: start the local stack with `cafe up`")
        print(url)
    else:
        print(stack.database_url())
    return 0
