{#
    One row per card customer: their first transaction in the chain. The one home of the
    first-visit rule and its tie-breaker: the earliest till time; at the same minute, the
    earlier file (by key) and the earlier line. Transactions without a readable till time
    cannot be first. Read from the current file footprints, which hold each file's first
    transaction per customer and day.

    Incremental by customer: the customers of the changed file versions
    (macros/incremental_changes.sql) are worked out again from all their footprints, read
    through the footprints' index on customer_key; a customer with no dated transaction
    left goes.
#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_changed_groups(['customer_key'], changed_customers()) }}",
    post_hook="{{ analyze_for_planner(when_unknown=true) }}",
    indexes=[
        {'columns': ['customer_key']},
        {'columns': ['first_week_start_local']},
    ] if target.type == 'postgres' else none,
    dist='customer_key' if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_build_changes') }}

with

footprints as (

    select
        customer_key,
        source_key,
        branch_name,
        sales_date_local,
        week_start_local,
        first_transacted_at_utc,
        first_line_number
    from {{ ref('int_file_footprints') }}
    where
        is_current
        {%- if is_incremental() %}
            and {{ in_list('customer_key', changed_customers()) }}
        {%- endif %}
        and customer_key is not null
        and first_transacted_at_utc is not null

),

ranked as (

    select
        *,
        row_number() over (
            partition by customer_key
            order by first_transacted_at_utc, source_key, first_line_number
        ) as visit_number
    from footprints

),

final as (

    select
        customer_key,
        {{ dbt.hash(dbt.concat(['source_key', "'|'", 'first_line_number'])) }} as first_transaction_id,
        branch_name as first_branch_name,
        first_transacted_at_utc as first_seen_at_utc,
        sales_date_local as first_seen_date_local,
        week_start_local as first_week_start_local
    from ranked
    where visit_number = 1

)

select * from final
