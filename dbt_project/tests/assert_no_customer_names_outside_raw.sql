{#
    Privacy rule: customer names exist only in `raw`. Fails on
      1. any column of a built schema named like `%customer_name%` or `%raw_line%`;
      2. any text value in the marts and reporting schemas equal to a customer name.
    The text columns are read from the catalogue when the test runs.
#}
{# Runs after every mart is built: #}
-- depends_on: {{ ref('dim_branches') }}
-- depends_on: {{ ref('dim_customers') }}
-- depends_on: {{ ref('dim_dates') }}
-- depends_on: {{ ref('dim_payment_methods') }}
-- depends_on: {{ ref('dim_product_prices') }}
-- depends_on: {{ ref('dim_products') }}
-- depends_on: {{ ref('fct_transaction_items') }}
-- depends_on: {{ ref('fct_transactions') }}
-- depends_on: {{ ref('rpt_branch_freshness') }}
-- depends_on: {{ ref('rpt_cohort_retention') }}
-- depends_on: {{ ref('rpt_customers_weekly') }}
-- depends_on: {{ ref('rpt_daily_branch_sales') }}
-- depends_on: {{ ref('rpt_file_loads') }}
-- depends_on: {{ ref('rpt_hourly_footfall') }}
-- depends_on: {{ ref('rpt_payment_mix_daily') }}
-- depends_on: {{ ref('rpt_product_sales_daily') }}
-- depends_on: {{ ref('rpt_rejection_reasons_daily') }}

{%- set schemas = ['staging', 'intermediate', 'marts', 'reporting'] -%}
{%- set text_columns = [] -%}
{%- if execute -%}
    {%- set found = run_query(
        "select table_schema, table_name, column_name from information_schema.columns"
        ~ " where table_schema in ('marts', 'reporting')"
        ~ " and data_type in ('character varying', 'text', 'character')"
        ~ " order by 1, 2, 3"
    ) -%}
    {%- for row in found.rows -%}
        {%- do text_columns.append(row) -%}
    {%- endfor -%}
{%- endif %}

with

names as (

    select distinct customer_name as value
    from {{ source('till', 'transactions') }}
    where customer_name is not null

),

named_columns as (

    select
        table_schema || '.' || table_name || '.' || column_name as location,
        'column name' as finding
    from information_schema.columns
    where
        table_schema in ('{{ schemas | join("', '") }}')
        and (column_name like '%customer_name%' or column_name like '%raw_line%')

),

leaked_values as (

    {% for schema, table, column in text_columns -%}
    select
        '{{ schema }}.{{ table }}.{{ column }}' as location,
        'customer name as a value' as finding
    from {{ adapter.quote(schema) }}.{{ adapter.quote(table) }} as t
    where t.{{ adapter.quote(column) }} in (select value from names)
    {% if not loop.last %}union all{% endif %}
    {% else -%}
    select
        cast(null as varchar(1024)) as location,
        cast(null as varchar(64)) as finding
    where 1 = 0
    {%- endfor %}

)

select location, finding from named_columns
union all
select location, finding from leaked_values
