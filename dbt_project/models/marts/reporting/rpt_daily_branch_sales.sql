-- Sales per café-local day and branch.
with

transactions as (

    select * from {{ ref('fct_transactions') }}

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
        sum(transactions.total_amount) as revenue,
        count(*) as transactions,
        sum(transactions.item_count) as items_sold,
        count(distinct transactions.customer_key) as card_customers
    from transactions
    inner join branches
        on transactions.branch_key = branches.branch_key
    group by transactions.sales_date_local, branches.branch_name

),

final as (

    select
        cast(daily.sales_date_local as date) as sales_date_local,
        cast(dates.day_start_utc as timestamptz) as day_start_utc,
        cast(daily.branch_name as varchar(256)) as branch_name,
        cast(daily.revenue as numeric(14, 2)) as revenue,
        cast(daily.transactions as integer) as transactions,
        cast(daily.items_sold as integer) as items_sold,
        cast(round(daily.revenue / daily.transactions, 2) as numeric(14, 2)) as avg_basket_value,
        cast(daily.card_customers as integer) as card_customers
    from daily
    inner join dates
        on daily.sales_date_local = dates.date_day

)

select * from final
