-- Units and revenue per café-local day, branch and product. Incremental by (day, branch),
-- as rpt_daily_branch_sales; the items come through their index on transaction_id.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_changed_groups(['sales_date_local', 'branch_name'], changed_sales_days()) }}",
    post_hook="{{ analyze_for_planner(when_unknown=true) }}",
    indexes=[{'columns': ['day_start_utc', 'branch_name']}, {'columns': ['sales_date_local', 'branch_name']}] if target.type == 'postgres' else none,
    dist='all' if target.type == 'redshift' else none,
    sort=['day_start_utc', 'branch_name'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_build_changes') }}

with

items as (

    select * from {{ ref('fct_transaction_items') }}

),

transactions as (

    select
        transactions.transaction_id,
        transactions.branch_key,
        transactions.sales_date_local
    from {{ ref('fct_transactions') }} as transactions
    {{ on_changed_sales_days('transactions') }}

),

products as (

    select * from {{ ref('dim_products') }}

),

branches as (

    select * from {{ ref('dim_branches') }}

),

dates as (

    select * from {{ ref('dim_dates') }}

),

daily as (

    select
        transactions.sales_date_local,
        transactions.branch_key,
        items.product_key,
        sum(items.quantity) as quantity,
        sum(items.line_amount) as revenue
    from items
    inner join transactions
        on items.transaction_id = transactions.transaction_id
    group by transactions.sales_date_local, transactions.branch_key, items.product_key

),

final as (

    select
        cast(daily.sales_date_local as date) as sales_date_local,
        cast(dates.day_start_utc as timestamptz) as day_start_utc,
        cast(branches.branch_name as varchar(256)) as branch_name,
        cast(products.product_key as varchar(32)) as product_key,
        cast(products.product_name as varchar(256)) as product_name,
        cast(products.product_category as varchar(32)) as product_category,
        cast(products.size as varchar(16)) as size,
        cast(daily.quantity as integer) as quantity,
        cast(daily.revenue as numeric(14, 2)) as revenue,
        products.is_known_size and products.is_known_product as is_known_product
    from daily
    inner join products
        on daily.product_key = products.product_key
    inner join branches
        on daily.branch_key = branches.branch_key
    inner join dates
        on daily.sales_date_local = dates.date_day

)

select * from final
