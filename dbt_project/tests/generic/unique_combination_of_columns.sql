{#
    The grain test: no two rows share the values of `combination_of_columns` (nulls
    included: a null in a key column counts as a value, so a null key cannot hide a
    duplicate). Named and shaped like dbt_utils' test so that linters (dbt-score,
    dbt-project-evaluator) recognise it; no package can be installed here.
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

    {%- set columns = combination_of_columns | join(', ') %}

    with

    grains as (

        select
            {{ columns }},
            count(*) as rows_per_grain
        from {{ model }}
        group by {{ columns }}

    )

    select * from grains
    where rows_per_grain > 1

{% endtest %}
