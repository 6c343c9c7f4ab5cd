{#
    Integers 1..10^digits from a cross join of ten-row digit lists: portable to Redshift,
    where generate_series runs on the leader node only and recursive CTEs are limited.
    `int_numbers` holds 10^numbers_spine_digits() rows: baskets are exploded over it (a
    test checks the largest basket fits) and `dim_dates` spans any range in blocks of it.
#}
{% macro numbers_spine_digits() -%}
    {{ return(4) }}
{%- endmacro %}

{% macro numbers_spine_size() -%}
    {{ return(10 ** numbers_spine_digits()) }}
{%- endmacro %}

{% macro numbers_spine(digits) -%}
    {%- for position in range(digits) %}
    {% if not loop.first %}cross join {% endif -%}
    (
        select 0 as d union all select 1 union all select 2 union all select 3
        union all select 4 union all select 5 union all select 6 union all select 7
        union all select 8 union all select 9
    ) as digit_{{ position }}
    {%- endfor %}
{%- endmacro %}

{% macro numbers_value(digits) -%}
    {%- for position in range(digits) -%}
        digit_{{ position }}.d * {{ 10 ** position }}{% if not loop.last %} + {% endif %}
    {%- endfor %} + 1
{%- endmacro %}


{#
    A CTE keyword that stops PostgreSQL from inlining a CTE into every place that reads it:
    the basket parse reads each item's text dozens of times, and an inlined CTE computes it
    again each time. Redshift has no such keyword (and plans CTEs its own way).
#}
{% macro materialized_cte() -%}
    {{ return(adapter.dispatch('materialized_cte', 'cafe_elt')()) }}
{%- endmacro %}

{% macro default__materialized_cte() -%}
    materialized
{%- endmacro %}

{% macro redshift__materialized_cte() -%}
{%- endmacro %}
