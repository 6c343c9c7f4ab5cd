-- Transactions and revenue per café-local day, branch and payment method. Incremental by
-- (day, branch), as rpt_daily_branch_sales.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_changed_groups(['sales_date_local', 'branch_name'], changed_sales_days()) }}",
    post_hook="{{ analyze_for_planner(when_unknown=true) }}",
    indexes=[{'columns': ['day_start_utc', 'branch_name']}] if target.type == 'postgres' else none,
    dist='all' if target.type == 'redshift' else none,
    sort=['day_start_utc', 'branch_name'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_build_changes') }}

with

transactions as (

    select transactions.* from {{ ref('fct_transactions') }} as transactions
    {{ on_changed_sales_days('transactions') }}

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
        branches.branch_name,
        transactions.payment_method,
        count(*) as transactions,
        sum(transactions.total_amount) as revenue
    from transactions
    inner join branches
        on transactions.branch_key = branches.branch_key
    group by transactions.sales_date_local, branches.branch_name, transactions.payment_method

),

final as (

    select
        cast(daily.sales_date_local as date) as sales_date_local,
        cast(dates.day_start_utc as timestamptz) as day_start_utc,
        cast(daily.branch_name as varchar(256)) as branch_name,
        cast(daily.payment_method as varchar(8)) as payment_method,
        cast(daily.transactions as integer) as transactions,
        cast(daily.revenue as numeric(14, 2)) as revenue
    from daily
    inner join dates
        on daily.sales_date_local = dates.date_day

)

select * from final
