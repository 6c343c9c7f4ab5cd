-- Transactions per café-local hour and branch: when the cafés are busy. Incremental by
-- (day, branch), as rpt_daily_branch_sales.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_changed_groups(['sales_date_local', 'branch_name'], changed_sales_days()) }}",
    post_hook="{{ analyze_for_planner(when_unknown=true) }}",
    indexes=[{'columns': ['hour_start_utc', 'branch_name']}, {'columns': ['sales_date_local', 'branch_name']}] if target.type == 'postgres' else none,
    dist='all' if target.type == 'redshift' else none,
    sort=['hour_start_utc', 'branch_name'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_build_changes') }}

with

transactions as (

    select
        transactions.branch_key,
        transactions.total_amount,
        transactions.sales_date_local,
        {{ dbt.date_trunc('hour', 'transactions.transacted_at_local') }} as hour_start_local
    from {{ ref('fct_transactions') }} as transactions
    {{ on_changed_sales_days('transactions') }}

),

branches as (

    select * from {{ ref('dim_branches') }}

),

dates as (

    select * from {{ ref('dim_dates') }}

),

hourly as (

    select
        transactions.hour_start_local,
        transactions.sales_date_local,
        branches.branch_name,
        count(*) as transactions,
        sum(transactions.total_amount) as revenue
    from transactions
    inner join branches
        on transactions.branch_key = branches.branch_key
    group by transactions.hour_start_local, transactions.sales_date_local, branches.branch_name

),

final as (

    select
        cast({{ local_to_utc('hourly.hour_start_local') }} as timestamptz) as hour_start_utc,
        cast(hourly.sales_date_local as date) as sales_date_local,
        cast(extract(hour from hourly.hour_start_local) as integer) as local_hour,
        cast(dates.weekday_number as integer) as weekday_number,
        cast(dates.weekday_name as varchar(16)) as weekday_name,
        cast(hourly.branch_name as varchar(256)) as branch_name,
        cast(hourly.transactions as integer) as transactions,
        cast(hourly.revenue as numeric(14, 2)) as revenue
    from hourly
    inner join dates
        on hourly.sales_date_local = dates.date_day

)

select * from final
