{#
    Privacy rule: customer names exist only in `raw`. Fails on
      1. any column of a schema this target builds named like `%customer_name%` or
         `%raw_line%`;
      2. any text value in the marts, reporting and stored-failures schemas equal to a
         customer name. On an incremental build, in a table with a `source_key` only the
         rows of the files whose footprint changed since the last complete build
         (int_build_changes), and in one with a `customer_key` only the changed customers'
         rows: incremental models write no other row, so no other row can have begun to
         leak. The first build and a --full-refresh build look at every row.
    The catalogue is read with run_query when the test runs, and only its findings reach the
    test's SQL as literals: Redshift refuses a query that joins its leader-node catalogue
    (information_schema) with user tables.
#}
{# The core group's snapshot models are private to it; set here, where partial parsing reads it. #}
{{ config(group='core') }}
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
-- depends_on: {{ ref('rpt_build_results') }}
-- depends_on: {{ ref('rpt_cohort_retention') }}
-- depends_on: {{ ref('rpt_customers_weekly') }}
-- depends_on: {{ ref('rpt_daily_branch_sales') }}
-- depends_on: {{ ref('rpt_file_loads') }}
-- depends_on: {{ ref('rpt_hourly_footfall') }}
-- depends_on: {{ ref('rpt_payment_mix_daily') }}
-- depends_on: {{ ref('rpt_product_sales_daily') }}
-- depends_on: {{ ref('rpt_rejection_reasons_daily') }}
-- depends_on: {{ ref('int_build_changes') }}

{%- set built_schemas = [] -%}
{%- for name in ['staging', 'intermediate', 'marts', 'reporting', 'test_failures'] -%}
    {%- do built_schemas.append(schema_for(name)) -%}
{%- endfor -%}
{%- set scanned_schemas = built_schemas[2:] -%}
{%- set named_columns = [] -%}
{%- set text_columns = [] -%}
{%- set keyed_tables = {} -%}
{%- if execute -%}
    {%- set found = run_query(
        "select table_schema, table_name, column_name from information_schema.columns"
        ~ " where table_schema in ('" ~ built_schemas | join("', '") ~ "')"
        ~ " and (column_name like '%customer_name%' or column_name like '%raw_line%')"
        ~ " order by 1, 2, 3"
    ) -%}
    {%- for row in found.rows -%}
        {%- do named_columns.append(row[0] ~ '.' ~ row[1] ~ '.' ~ row[2]) -%}
    {%- endfor -%}
    {%- set found = run_query(
        "select table_schema, table_name, column_name from information_schema.columns"
        ~ " where table_schema in ('" ~ scanned_schemas | join("', '") ~ "')"
        ~ " and data_type in ('character varying', 'text', 'character')"
        ~ " order by 1, 2, 3"
    ) -%}
    {%- for row in found.rows -%}
        {%- do text_columns.append(row) -%}
    {%- endfor -%}
    {%- set found = run_query(
        "select table_schema, table_name, column_name from information_schema.columns"
        ~ " where table_schema in ('" ~ scanned_schemas | join("', '") ~ "')"
        ~ " and column_name in ('source_key', 'customer_key')"
        ~ " order by 1, 2, 3"
    ) -%}
    {#- source_key after customer_key: a table with both is filtered by its files. -#}
    {%- for row in found.rows if row[2] in ('source_key', 'customer_key') -%}
        {%- do keyed_tables.update({row[0] ~ '.' ~ row[1]: row[2]}) -%}
    {%- endfor -%}
{%- endif %}

with

names as (

    select distinct customer_name as value
    from {{ source('till', 'transactions') }}
    where customer_name is not null

),

named_columns as (

    {% for location in named_columns -%}
    select
        cast('{{ location }}' as varchar(1024)) as location,
        cast('column name' as varchar(64)) as finding
    {% if not loop.last %}union all{% endif %}
    {% else -%}
    select
        cast(null as varchar(1024)) as location,
        cast(null as varchar(64)) as finding
    where 1 = 0
    {%- endfor %}

),

leaked_values as (

    {% for schema, table, column in text_columns -%}
    select
        cast('{{ schema }}.{{ table }}.{{ column }}' as varchar(1024)) as location,
        cast('customer name as a value' as varchar(64)) as finding
    from {{ adapter.quote(schema) }}.{{ adapter.quote(table) }} as t
    where
        t.{{ adapter.quote(column) }} in (select value from names)
        {%- set key = keyed_tables.get(schema ~ '.' ~ table) %}
        {%- if key and checks_only_changes() %}
            and {{ in_list(
                't.' ~ key,
                'select distinct changes.' ~ key ~ ' from ' ~ ref('int_build_changes') ~ ' as changes'
            ) }}
        {%- endif %}
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
