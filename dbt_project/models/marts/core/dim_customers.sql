-- One row per card customer (a keyed card hash); cash customers are anonymous.
{{ config(
    dist='customer_key' if target.type == 'redshift' else none,
    sort=['first_seen_at_utc'] if target.type == 'redshift' else none,
) }}

with

card_transactions as (

    select
        customer_key,
        branch_name,
        transacted_at_utc,
        transacted_at_local,
        row_number() over (
            partition by customer_key order by transacted_at_utc, source_key, line_number
        ) as visit_number
    from {{ ref('stg_till__transactions') }}
    where customer_key is not null

),

final as (

    select
        cast(customer_key as varchar(64)) as customer_key,
        cast(min(transacted_at_utc) as timestamptz) as first_seen_at_utc,
        cast(max(transacted_at_utc) as timestamptz) as last_seen_at_utc,
        cast(max(case when visit_number = 1 then cast(transacted_at_local as date) end) as date)
            as first_seen_date_local,
        cast(max(case when visit_number = 1 then branch_name end) as varchar(256))
            as first_branch_name,
        cast(count(*) as integer) as visit_count
    from card_transactions
    group by customer_key

)

select * from final
