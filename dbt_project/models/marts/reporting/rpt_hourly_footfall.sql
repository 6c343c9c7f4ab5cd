-- Transactions per café-local hour and branch: when the cafés are busy.
with

transactions as (

    select
        branch_key,
        total_amount,
        sales_date_local,
        {{ dbt.date_trunc('hour', 'transacted_at_local') }} as hour_start_local
    from {{ ref('fct_transactions') }}

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
