{#
    Café wall-clock handling. The till writes `dd/mm/YYYY HH:MM` in Europe/London time;
    each engine spells "parse" and "local to UTC" differently, hence the dispatch.
#}

{#
    The till time as a timestamp without zone, or null when the text is not a time that
    exists: loader-checked today, but rows loaded before the contract stay in `raw`, and a
    cast error would stop the build and quote the value into dbt's log and the server log.
    The checks run in CASE order, each only after the previous one held, so no cast can
    meet text it cannot read.
#}
{% macro parse_till_timestamp(text) -%}
    case when {{ till_timestamp_is_valid(text) }} then
        {{ adapter.dispatch('parse_till_timestamp', 'cafe_elt')(text) }}
    end
{%- endmacro %}

{% macro till_timestamp_is_valid(text) -%}
    {%- set day = 'cast(substring(' ~ text ~ ' from 1 for 2) as integer)' -%}
    {%- set month = 'cast(substring(' ~ text ~ ' from 4 for 2) as integer)' -%}
    {%- set year = 'cast(substring(' ~ text ~ ' from 7 for 4) as integer)' -%}
    (case
        when not coalesce({{ text }} ~ '^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}$', false) then false
        when {{ month }} not between 1 and 12 or {{ year }} < 1 then false
        when cast(substring({{ text }} from 12 for 2) as integer) > 23 then false
        when cast(substring({{ text }} from 15 for 2) as integer) > 59 then false
        else {{ day }} between 1 and (
            case
                when {{ month }} = 2 and mod({{ year }}, 4) = 0
                    and (mod({{ year }}, 100) <> 0 or mod({{ year }}, 400) = 0) then 29
                when {{ month }} = 2 then 28
                when {{ month }} in (4, 6, 9, 11) then 30
                else 31
            end
        )
    end)
{%- endmacro %}

{#
    to_timestamp() returns a timestamptz read in the session's zone: in a London session the
    non-existent 01:30 of the spring-forward night would shift by an hour on the way back
    to timestamp. A date plus a time never meets a zone.
#}
{% macro default__parse_till_timestamp(text) -%}
    (to_date({{ text }}, 'DD/MM/YYYY') + cast(split_part({{ text }}, ' ', 2) as time))
{%- endmacro %}

{# Redshift sessions run in UTC, so the result carries the wall clock unchanged. #}
{% macro redshift__parse_till_timestamp(text) -%}
    cast(to_timestamp({{ text }}, 'DD/MM/YYYY HH24:MI') as timestamp)
{%- endmacro %}


{# A café-local timestamp (without zone) as an instant (timestamptz). #}
{% macro local_to_utc(ts) -%}
    {{ return(adapter.dispatch('local_to_utc', 'cafe_elt')(ts)) }}
{%- endmacro %}

{% macro default__local_to_utc(ts) -%}
    ({{ ts }} at time zone '{{ var("cafe_timezone") }}')
{%- endmacro %}

{% macro redshift__local_to_utc(ts) -%}
    cast(convert_timezone('{{ var("cafe_timezone") }}', 'UTC', {{ ts }}) as timestamptz)
{%- endmacro %}


{# An instant (timestamptz) on the café's wall clock, as a timestamp without zone. #}
{% macro utc_to_local(ts) -%}
    {{ return(adapter.dispatch('utc_to_local', 'cafe_elt')(ts)) }}
{%- endmacro %}

{% macro default__utc_to_local(ts) -%}
    ({{ ts }} at time zone '{{ var("cafe_timezone") }}')
{%- endmacro %}

{% macro redshift__utc_to_local(ts) -%}
    convert_timezone('UTC', '{{ var("cafe_timezone") }}', cast({{ ts }} as timestamp))
{%- endmacro %}


{# Midnight UTC of the UTC day holding an instant, as timestamptz. #}
{% macro utc_day_start(ts) -%}
    {{ return(adapter.dispatch('utc_day_start', 'cafe_elt')(ts)) }}
{%- endmacro %}

{% macro default__utc_day_start(ts) -%}
    (date_trunc('day', {{ ts }} at time zone 'UTC') at time zone 'UTC')
{%- endmacro %}

{% macro redshift__utc_day_start(ts) -%}
    cast(date_trunc('day', convert_timezone('UTC', {{ ts }})) as timestamptz)
{%- endmacro %}


{# The build's clock, as an instant: now() on PostgreSQL, getdate() (UTC) on Redshift. #}
{% macro current_timestamp_utc() -%}
    {{ return(adapter.dispatch('current_timestamp_utc', 'cafe_elt')()) }}
{%- endmacro %}

{% macro default__current_timestamp_utc() -%}
    now()
{%- endmacro %}

{% macro redshift__current_timestamp_utc() -%}
    cast(getdate() as timestamptz)
{%- endmacro %}


{# Seconds from one instant to a later one, as a numeric. #}
{% macro seconds_between(start_ts, end_ts) -%}
    {{ return(adapter.dispatch('seconds_between', 'cafe_elt')(start_ts, end_ts)) }}
{%- endmacro %}

{% macro default__seconds_between(start_ts, end_ts) -%}
    cast(extract(epoch from ({{ end_ts }} - {{ start_ts }})) as numeric(18, 3))
{%- endmacro %}

{% macro redshift__seconds_between(start_ts, end_ts) -%}
    cast(datediff(millisecond, {{ start_ts }}, {{ end_ts }}) / 1000.0 as numeric(18, 3))
{%- endmacro %}


{# ISO day of the week of a date: 1 = Monday … 7 = Sunday (`isodow` is PostgreSQL-only). #}
{% macro iso_weekday(date_expression) -%}
    (mod(cast(extract(dow from {{ date_expression }}) as integer) + 6, 7) + 1)
{%- endmacro %}


{# The Monday starting the ISO week of a date (date_trunc('week') is Monday on both engines). #}
{% macro week_start(date_expression) -%}
    cast({{ dbt.date_trunc('week', date_expression) }} as date)
{%- endmacro %}


{# Whole days from one date to a later one. #}
{% macro days_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('days_between', 'cafe_elt')(start_date, end_date)) }}
{%- endmacro %}

{% macro default__days_between(start_date, end_date) -%}
    ({{ end_date }} - {{ start_date }})
{%- endmacro %}

{% macro redshift__days_between(start_date, end_date) -%}
    datediff(day, {{ start_date }}, {{ end_date }})
{%- endmacro %}
