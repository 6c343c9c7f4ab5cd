"""Grafana's SQL query preprocessing, reproduced so that panel SQL can be run outside Grafana.

A panel query reaches the database in two steps: Grafana's frontend first interpolates
template variables (`$branch`, `${branch:sqlstring}`), then the datasource backend expands
its `$__macro(...)` calls against the dashboard time range. Each datasource plugin has its
own macro table: the core PostgreSQL datasource and the Redshift plugin differ (Redshift's
`$__timeGroup` always appends `AS "time"` and it has no `$__timeGroupAlias`), so the
expansion is keyed by the flavour. The rules follow Grafana 11's
`grafana-postgresql-datasource/macros.go` and `grafana/redshift-datasource/pkg/redshift/macros.go`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

FlavourName = Literal["postgres", "redshift"]

_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_INTERVAL_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MACRO_START = re.compile(r"\$__(\w+)\(")
# Grafana's template-variable syntax: $name, [[name]] / [[name:format]], ${name} / ${name:format}.
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}")


class MacroError(ValueError):
    """A macro call that the datasource would refuse (unknown name, wrong arguments)."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a Grafana time range is absolute: give timezone-aware datetimes")
        if self.end < self.start:
            raise ValueError("time range ends before it starts")


@dataclass(frozen=True)
class Variable:
    """The current state of a dashboard template variable."""

    name: str
    selected: tuple[str, ...]
    multi: bool = False
    include_all: bool = False

    @classmethod
    def all_of(cls, name: str, options: Sequence[str]) -> Variable:
        """A multi-value variable with "All" selected (no custom all value): every option."""
        return cls(name, tuple(options), multi=True, include_all=True)


def _go_rfc3339(moment: datetime, *, nanos: bool) -> str:
    """Go's time.RFC3339Nano / RFC3339 rendering of a UTC instant (trailing zeros dropped)."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos and utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _go_float(seconds: float) -> str:
    """Go's %v of a float64, which is how both plugins print interval seconds."""
    return str(int(seconds)) if float(seconds).is_integer() else repr(seconds)


def parse_interval(text: str) -> float:
    """Seconds in a Grafana interval literal such as '1h', '15m', '1d' (quotes allowed)."""
    match = _INTERVAL.match(text.strip().strip("'"))
    if not match:
        raise MacroError(f"error parsing interval {text}")
    return float(match.group(1)) * _INTERVAL_SECONDS[match.group(2)]


def _split_arguments(text: str) -> list[str]:
    """Split a macro's argument list on top-level commas (nested calls and quotes kept whole)."""
    if not text.strip():
        return []
    arguments: list[str] = []
    depth, quoted = 0, False
    current: list[str] = []
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            arguments.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    arguments.append("".join(current).strip())
    return arguments


def _closing_parenthesis(sql: str, opening: int) -> int:
    depth, quoted = 0, False
    for index in range(opening, len(sql)):
        char = sql[index]
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth == 0:
                return index
    raise MacroError(f"unbalanced parentheses after {sql[opening - 20 : opening + 1]!r}")


MacroFunction = Callable[[list[str], TimeRange], str]


def _arity(name: str, arguments: list[str], *counts: int) -> None:
    if len(arguments) not in counts:
        raise MacroError(f"macro $__{name} expects {counts[0]} argument(s), got {len(arguments)}")


def _on_column(name: str, template: str) -> MacroFunction:
    """A macro of one column argument rendered through `template` ({0} is the column)."""

    def expand(args: list[str], window: TimeRange) -> str:
        _arity(name, args, 1)
        return template.format(args[0])

    return expand


def _postgres_macros() -> dict[str, MacroFunction]:
    def time_filter(args: list[str], window: TimeRange) -> str:
        _arity("timeFilter", args, 1)
        start, end = (_go_rfc3339(t, nanos=True) for t in (window.start, window.end))
        return f"{args[0]} BETWEEN '{start}' AND '{end}'"

    def time_group(args: list[str], window: TimeRange) -> str:
        # A third argument is the fill mode (NULL, previous, 0): it shapes the response only.
        _arity("timeGroup", args, 2, 3)
        seconds = _go_float(parse_interval(args[1]))
        return f"floor(extract(epoch from {args[0]})/{seconds})*{seconds}"

    def unix_epoch_group(args: list[str], window: TimeRange) -> str:
        _arity("unixEpochGroup", args, 2, 3)
        seconds = _go_float(parse_interval(args[1]))
        return f"floor(({args[0]})/{seconds})*{seconds}"

    def epoch_filter(args: list[str], window: TimeRange, scale: int) -> str:
        _arity("unixEpochFilter", args, 1)
        start = int(window.start.timestamp()) * scale
        end = int(window.end.timestamp()) * scale
        return f"{args[0]} >= {start} AND {args[0]} <= {end}"

    return {
        "time": _on_column("time", '{0} AS "time"'),
        "timeEpoch": _on_column("timeEpoch", 'extract(epoch from {0}) as "time"'),
        "timeFilter": time_filter,
        "timeFrom": lambda a, w: f"'{_go_rfc3339(w.start, nanos=True)}'",
        "timeTo": lambda a, w: f"'{_go_rfc3339(w.end, nanos=True)}'",
        "timeGroup": time_group,
        "timeGroupAlias": lambda a, w: time_group(a, w) + ' AS "time"',
        "unixEpochFilter": lambda a, w: epoch_filter(a, w, 1),
        "unixEpochNanoFilter": lambda a, w: epoch_filter(a, w, 1_000_000_000),
        "unixEpochNanoFrom": lambda a, w: str(int(w.start.timestamp()) * 1_000_000_000),
        "unixEpochNanoTo": lambda a, w: str(int(w.end.timestamp()) * 1_000_000_000),
        "unixEpochGroup": unix_epoch_group,
        "unixEpochGroupAlias": lambda a, w: unix_epoch_group(a, w) + ' AS "time"',
    }


def _redshift_macros() -> dict[str, MacroFunction]:
    def time_filter(args: list[str], window: TimeRange) -> str:
        _arity("timeFilter", args, 1)
        start, end = (_go_rfc3339(t, nanos=False) for t in (window.start, window.end))
        return f"{args[0]} BETWEEN '{start}' AND '{end}'"

    def time_group(args: list[str], window: TimeRange) -> str:
        _arity("timeGroup", args, 2)
        seconds = _go_float(parse_interval(args[1]))
        return f'floor(extract(epoch from {args[0]})/{seconds})*{seconds} AS "time"'

    def unix_epoch_group(args: list[str], window: TimeRange) -> str:
        _arity("unixEpochGroup", args, 2)
        seconds = _go_float(parse_interval(args[1]))
        return f'floor({args[0]}/{seconds})*{seconds} AS "time"'

    def unix_epoch_filter(args: list[str], window: TimeRange) -> str:
        _arity("unixEpochFilter", args, 1)
        start, end = int(window.start.timestamp()), int(window.end.timestamp())
        return f"{args[0]} >= {start} AND {args[0]} <= {end}"

    return {
        "timeEpoch": _on_column("timeEpoch", 'extract(epoch from {0}) as "time"'),
        "timeFilter": time_filter,
        "timeFrom": lambda a, w: f"'{_go_rfc3339(w.start, nanos=False)}'",
        "timeTo": lambda a, w: f"'{_go_rfc3339(w.end, nanos=False)}'",
        "timeGroup": time_group,
        "unixEpochFilter": unix_epoch_filter,
        "unixEpochGroup": unix_epoch_group,
    }


MACROS: Mapping[FlavourName, Mapping[str, MacroFunction]] = {
    "postgres": _postgres_macros(),
    "redshift": _redshift_macros(),
}


def expand_macros(sql: str, flavour: FlavourName, window: TimeRange) -> str:
    """Replace every `$__name(args)` call the way the flavour's datasource backend does."""
    table = MACROS[flavour]
    pieces: list[str] = []
    position = 0
    while match := _MACRO_START.search(sql, position):
        name = match.group(1)
        if name not in table:
            raise MacroError(f"undefined macro: $__{name} ({flavour})")
        closing = _closing_parenthesis(sql, match.end() - 1)
        arguments = _split_arguments(sql[match.end() : closing])
        pieces.append(sql[position : match.start()])
        pieces.append(table[name](arguments, window))
        position = closing + 1
    pieces.append(sql[position:])
    return "".join(pieces)


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _format_values(variable: Variable, form: str | None, flavour: FlavourName) -> str:
    values = variable.selected
    as_list = variable.multi or variable.include_all
    if form is None:
        # The datasource's own interpolateVariable: PostgreSQL's SqlDatasource and the AWS SDK's
        # applySQLTemplateVariables both quote list values; a single plain value goes in raw
        # (PostgreSQL still doubles its quotes).
        if as_list:
            return ",".join(_quote_literal(v) for v in values)
        single = values[0] if values else ""
        return single.replace("'", "''") if flavour == "postgres" else single
    formatters: dict[str, Callable[[tuple[str, ...]], str]] = {
        "raw": lambda vs: ",".join(vs),
        "csv": lambda vs: ",".join(vs),
        "pipe": lambda vs: "|".join(vs),
        "singlequote": lambda vs: ",".join("'" + v.replace("'", "\\'") + "'" for v in vs),
        "doublequote": lambda vs: ",".join('"' + v.replace('"', '\\"') + '"' for v in vs),
        "sqlstring": lambda vs: ",".join(_quote_literal(v) for v in vs),
    }
    if form not in formatters:
        raise MacroError(f"unsupported variable format :{form}")
    return formatters[form](values)


def interpolate_variables(sql: str, variables: Mapping[str, Variable], flavour: FlavourName) -> str:
    """Grafana's frontend template interpolation; unknown names (macros too) are left alone."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        form = match.group(3) or match.group(5)
        variable = variables.get(name)
        if variable is None:
            return match.group(0)
        return _format_values(variable, form, flavour)

    return _VARIABLE.sub(replace, sql)


def render(
    sql: str,
    flavour: FlavourName,
    window: TimeRange,
    variables: Mapping[str, Variable] | None = None,
) -> str:
    """The SQL text the database receives for a panel query: variables first, then macros."""
    return expand_macros(interpolate_variables(sql, variables or {}, flavour), flavour, window)
