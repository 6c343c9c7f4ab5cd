-- One row per card customer (a keyed card hash); cash customers are anonymous. Read from
-- the current file footprints; incremental by customer: the customers of changed file
-- versions are worked out again from all their footprints (and go when none is left).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_changed_groups(['customer_key'], changed_customers()) }}",
    post_hook="{{ analyze_for_planner(when_unknown=true) }}",
    dist='customer_key' if target.type == 'redshift' else none,
    sort=['first_seen_at_utc'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_build_changes') }}

with

visits as (

    select
        customer_key,
        sum(transactions) as visit_count,
        max(last_transacted_at_utc) as last_seen_at_utc
    from {{ ref('int_file_footprints') }}
    where
        is_current
        {%- if is_incremental() %}
            and {{ in_list('customer_key', changed_customers()) }}
        {%- endif %}
        and customer_key is not null
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
