{#
    One row per card customer × branch × café-local ISO week with a purchase, classified.

    A customer is NEW in the week and at the branch of their first visit in the chain
    (int_customer_first_visits), and RETURNING in every other (branch, week) they appear
    in — a second branch in that first week included, since the chain already knew them.
    Cash buyers have no key; a transaction without a readable till time has no week.
#}
with

card_transactions as (

    select
        customer_key,
        branch_name,
        {{ week_start('transacted_at_local') }} as week_start_local
    from {{ ref('int_build_transactions') }}
    where customer_key is not null and transacted_at_local is not null

),

first_visits as (

    select
        customer_key,
        first_branch_name,
        first_week_start_local
    from {{ ref('int_customer_first_visits') }}

),

branch_weeks as (

    select
        customer_key,
        branch_name,
        week_start_local,
        count(*) as transactions
    from card_transactions
    group by customer_key, branch_name, week_start_local

),

final as (

    select
        branch_weeks.customer_key,
        branch_weeks.branch_name,
        branch_weeks.week_start_local,
        branch_weeks.transactions,
        first_visits.first_week_start_local,
        coalesce(
            branch_weeks.week_start_local = first_visits.first_week_start_local
            and branch_weeks.branch_name = first_visits.first_branch_name,
            false
        ) as is_new_customer
    from branch_weeks
    inner join first_visits
        on branch_weeks.customer_key = first_visits.customer_key

)

select * from final
