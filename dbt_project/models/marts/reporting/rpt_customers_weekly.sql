-- New, returning and active card customers per café-local ISO week and branch.
with

customer_weeks as (

    select * from {{ ref('int_customer_branch_weeks') }}

),

weekly as (

    select
        week_start_local,
        branch_name,
        sum(case when is_new_customer then 1 else 0 end) as new_customers,
        sum(case when is_new_customer then 0 else 1 end) as returning_customers,
        count(*) as active_customers
    from customer_weeks
    group by week_start_local, branch_name

),

final as (

    select
        cast(week_start_local as date) as week_start_local,
        cast({{ local_to_utc('cast(week_start_local as timestamp)') }} as timestamptz) as week_start_utc,
        cast(branch_name as varchar(256)) as branch_name,
        cast(new_customers as integer) as new_customers,
        cast(returning_customers as integer) as returning_customers,
        cast(active_customers as integer) as active_customers
    from weekly

)

select * from final
