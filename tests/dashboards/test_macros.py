"""Grafana's SQL macro and template-variable expansion, per datasource flavour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cafe.dashboards.macros import (
    FlavourName,
    MacroError,
    TimeRange,
    Variable,
    expand_macros,
    interpolate_variables,
    parse_interval,
    render,
)

FLAVOURS: tuple[FlavourName, ...] = ("postgres", "redshift")
WINDOW = TimeRange(
    datetime(2024, 3, 30, 23, 0, tzinfo=UTC), datetime(2024, 4, 6, 12, 30, 15, tzinfo=UTC)
)
BRANCHES = {"branch": Variable("branch", ("Leeds", "Longridge"), multi=True, include_all=True)}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_time_filter_is_a_utc_between(flavour: FlavourName) -> None:
    sql = expand_macros("WHERE $__timeFilter(day_start_utc)", flavour, WINDOW)
    assert sql == ("WHERE day_start_utc BETWEEN '2024-03-30T23:00:00Z' AND '2024-04-06T12:30:15Z'")


def test_time_filter_renders_a_non_utc_range_in_utc() -> None:
    london_summer = datetime(2024, 6, 1, 9, 0).astimezone()
    window = TimeRange(london_summer, london_summer + timedelta(hours=1))
    expected_start = london_summer.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert expand_macros("$__timeFrom()", "postgres", window) == f"'{expected_start}'"


def test_postgres_keeps_fractions_of_a_second_redshift_drops_them() -> None:
    window = TimeRange(
        datetime(2024, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    )
    assert expand_macros("$__timeFrom()", "postgres", window) == "'2024-01-01T00:00:00.25Z'"
    assert expand_macros("$__timeFrom()", "redshift", window) == "'2024-01-01T00:00:00Z'"
    assert expand_macros("$__timeTo()", "redshift", window) == "'2024-01-02T00:00:00Z'"


def test_postgres_time_group_is_bare_and_its_alias_form_names_the_column() -> None:
    assert (
        expand_macros("$__timeGroup(started_at_utc, '1h')", "postgres", WINDOW)
        == "floor(extract(epoch from started_at_utc)/3600)*3600"
    )
    assert (
        expand_macros("$__timeGroupAlias(started_at_utc, '15m', previous)", "postgres", WINDOW)
        == 'floor(extract(epoch from started_at_utc)/900)*900 AS "time"'
    )


def test_redshift_time_group_always_names_the_column_and_has_no_alias_form() -> None:
    assert (
        expand_macros("$__timeGroup(started_at_utc, '1d')", "redshift", WINDOW)
        == 'floor(extract(epoch from started_at_utc)/86400)*86400 AS "time"'
    )
    with pytest.raises(MacroError, match="undefined macro"):
        expand_macros("$__timeGroupAlias(started_at_utc, '1h')", "redshift", WINDOW)


def test_unix_epoch_filters() -> None:
    start, end = int(WINDOW.start.timestamp()), int(WINDOW.end.timestamp())
    for flavour in FLAVOURS:
        assert (
            expand_macros("$__unixEpochFilter(epoch_s)", flavour, WINDOW)
            == f"epoch_s >= {start} AND epoch_s <= {end}"
        )
    assert expand_macros("$__unixEpochNanoFilter(ns)", "postgres", WINDOW) == (
        f"ns >= {start * 10**9} AND ns <= {end * 10**9}"
    )
    assert expand_macros("$__unixEpochGroupAlias(epoch_s, '1h')", "postgres", WINDOW) == (
        'floor((epoch_s)/3600)*3600 AS "time"'
    )


def test_macro_arguments_may_hold_nested_calls_and_commas_in_quotes() -> None:
    sql = "$__timeFilter(coalesce(finished_at_utc, started_at_utc))"
    assert expand_macros(sql, "postgres", WINDOW).startswith(
        "coalesce(finished_at_utc, started_at_utc) BETWEEN '2024-03-30T23:00:00Z'"
    )


def test_wrong_arity_and_bad_intervals_are_refused() -> None:
    with pytest.raises(MacroError):
        expand_macros("$__timeFilter(a, b)", "postgres", WINDOW)
    with pytest.raises(MacroError, match="interval"):
        expand_macros("$__timeGroup(a, 'soon')", "postgres", WINDOW)


@pytest.mark.parametrize(
    ("text", "seconds"), [("'1h'", 3600), ("5m", 300), ("1d", 86400), ("2w", 1_209_600)]
)
def test_interval_parsing(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


def test_variable_formats() -> None:
    quoted = Variable("branch", ("St John's", "Leeds"), multi=True)
    variables = {"branch": quoted}
    assert interpolate_variables("${branch:sqlstring}", variables, "postgres") == (
        "'St John''s','Leeds'"
    )
    assert interpolate_variables("${branch:singlequote}", variables, "postgres") == (
        "'St John\\'s','Leeds'"
    )
    assert interpolate_variables("[[branch:csv]]", variables, "postgres") == "St John's,Leeds"
    # The datasources' own default for a multi-value variable: quoted SQL literals.
    for flavour in FLAVOURS:
        assert interpolate_variables("$branch", variables, flavour) == "'St John''s','Leeds'"


def test_single_value_default_format_differs_between_plugins() -> None:
    single = {"tag": Variable("tag", ("O'Neil",))}
    assert interpolate_variables("x = '$tag'", single, "postgres") == "x = 'O''Neil'"
    assert interpolate_variables("x = '${tag}'", single, "redshift") == "x = 'O'Neil'"


def test_all_expands_to_every_option_and_macros_are_left_for_the_backend() -> None:
    variables = {"branch": Variable.all_of("branch", ["Leeds", "Longridge", "Whitby"])}
    sql = "WHERE $__timeFilter(t) AND branch_name IN (${branch:sqlstring}) AND $unknown"
    interpolated = interpolate_variables(sql, variables, "postgres")
    assert interpolated == (
        "WHERE $__timeFilter(t) AND branch_name IN ('Leeds','Longridge','Whitby') AND $unknown"
    )


def test_render_applies_variables_then_macros() -> None:
    sql = render(
        "SELECT $__timeGroupAlias(t, '1h') FROM x WHERE $__timeFilter(t) AND b IN ($branch)",
        "postgres",
        WINDOW,
        BRANCHES,
    )
    assert "$" not in sql
    assert "IN ('Leeds','Longridge')" in sql


def test_time_range_must_be_aware_and_ordered() -> None:
    with pytest.raises(ValueError):
        TimeRange(datetime(2024, 1, 1), datetime(2024, 1, 2))
    with pytest.raises(ValueError):
        TimeRange(WINDOW.end, WINDOW.start)
