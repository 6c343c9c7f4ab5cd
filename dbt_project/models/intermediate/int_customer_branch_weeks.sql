{#
    One row per card customer × branch × café-local ISO week with a purchase, classified.

    A customer is NEW in the week and at the branch of their first-ever transaction in the
    chain, and RETURNING in every other (branch, week) they appear in — a second branch in
    that first week included, since the chain already knew them. Cash buyers have no key.
#}
with

card_transactions as (

    select
        transaction_id,
        customer_key,
        branch_name,
        transacted_at_utc,
        {{ week_start('transacted_at_local') }} as week_start_local
    from {{ ref('stg_till__transactions') }}
    where customer_key is not null

),

first_visits as (

    select
        customer_key,
        branch_name as first_branch_name,
        week_start_local as first_week_start_local
    from (
        select
            customer_key,
            branch_name,
            week_start_local,
            row_number() over (
                partition by customer_key order by transacted_at_utc, transaction_id
            ) as visit_number
        from card_transactions
    ) as ranked
    where visit_number = 1

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
