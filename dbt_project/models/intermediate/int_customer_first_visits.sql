{#
    One row per card customer: their first transaction in the chain. The one home of the
    first-visit rule and its tie-breaker: the earliest till time; at the same minute, the
    earlier file (by key) and the earlier line. Transactions without a readable till time
    cannot be first. A table: three marts read it, the window runs once.
#}
{{ config(
    materialized='table',
    dist='customer_key' if target.type == 'redshift' else none,
) }}

with

card_transactions as (

    select
        transaction_id,
        source_key,
        line_number,
        customer_key,
        branch_name,
        transacted_at_utc,
        transacted_at_local
    from {{ ref('int_build_transactions') }}
    where customer_key is not null and transacted_at_utc is not null

),

ranked as (

    select
        *,
        row_number() over (
            partition by customer_key order by transacted_at_utc, source_key, line_number
        ) as visit_number
    from card_transactions

),

final as (

    select
        customer_key,
        transaction_id as first_transaction_id,
        branch_name as first_branch_name,
        transacted_at_utc as first_seen_at_utc,
        cast(transacted_at_local as date) as first_seen_date_local,
        {{ week_start('transacted_at_local') }} as first_week_start_local
    from ranked
    where visit_number = 1

)

select * from final
