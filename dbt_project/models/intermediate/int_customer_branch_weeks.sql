{#
    One row per card customer × branch × café-local ISO week with a purchase, classified.

    A customer is NEW in the week and at the branch of their first visit in the chain
    (int_customer_first_visits), and RETURNING in every other (branch, week) they appear
    in — a second branch in that first week included, since the chain already knew them.
    Cash buyers have no key; a transaction without a readable till time has no week.

    A table that both customer marts read (once computed, not twice), incremental by
    customer like int_customer_first_visits: a changed customer's rows are all worked out
    again, since a moved first visit reclassifies every week.
#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_changed_groups(['customer_key'], changed_customers()) }}",
    post_hook="{{ analyze_for_planner(when_unknown=true) }}",
    indexes=[
        {'columns': ['customer_key']},
        {'columns': ['week_start_local', 'branch_name']},
        {'columns': ['first_week_start_local', 'week_start_local']},
    ] if target.type == 'postgres' else none,
    dist='customer_key' if target.type == 'redshift' else none,
    sort=['week_start_local'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_build_changes') }}

with

card_footprints as (

    select
        customer_key,
        branch_name,
        week_start_local,
        transactions
    from {{ ref('int_file_footprints') }}
    where
        is_current
        {%- if is_incremental() %}
            and {{ in_list('customer_key', changed_customers()) }}
        {%- endif %}
        and customer_key is not null
        and week_start_local is not null

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
        sum(transactions) as transactions
    from card_footprints
    group by customer_key, branch_name, week_start_local

),

final as (

    select
        branch_weeks.customer_key,
        branch_weeks.branch_name,
        branch_weeks.week_start_local,
        cast(branch_weeks.transactions as integer) as transactions,
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
