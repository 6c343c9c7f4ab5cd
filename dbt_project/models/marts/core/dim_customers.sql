-- One row per card customer (a keyed card hash); cash customers are anonymous.
{{ config(
    dist='customer_key' if target.type == 'redshift' else none,
    sort=['first_seen_at_utc'] if target.type == 'redshift' else none,
) }}

with

visits as (

    select
        customer_key,
        count(*) as visit_count,
        max(transacted_at_utc) as last_seen_at_utc
    from {{ ref('int_build_transactions') }}
    where customer_key is not null
    group by customer_key

),

first_visits as (

    select * from {{ ref('int_customer_first_visits') }}

),

final as (

    select
        cast(visits.customer_key as varchar(64)) as customer_key,
        cast(first_visits.first_seen_at_utc as timestamptz) as first_seen_at_utc,
        cast(visits.last_seen_at_utc as timestamptz) as last_seen_at_utc,
        cast(first_visits.first_seen_date_local as date) as first_seen_date_local,
        cast(first_visits.first_branch_name as varchar(256)) as first_branch_name,
        cast(visits.visit_count as integer) as visit_count
    from visits
    left join first_visits
        on visits.customer_key = first_visits.customer_key

)

select * from final
