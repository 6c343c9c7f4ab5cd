-- Weekly cohorts of card customers (by first visit) and how many come back each later week.
-- Incremental: a cohort a changed customer may have joined or left is rebuilt whole (its
-- size changes), and otherwise the cohort's weeks where changed customers' rows are
-- (macros/customer_changes.sql).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_changed_cohort_weeks() }}",
    post_hook="{{ analyze_for_planner(when_unknown=true) }}",
    indexes=[{'columns': ['cohort_week_utc']}] if target.type == 'postgres' else none,
    dist='all' if target.type == 'redshift' else none,
    sort=['cohort_week_utc'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_build_changes') }}
-- depends_on: {{ ref('int_file_footprints') }}

with

{% if is_incremental() -%}
    changed as {{ materialized_cte() }} (

        {{ changed_cohort_weeks() }}

    ),
{%- endif %}

cohorts as (

    -- Every card customer with a dated visit has one first visit, and a week in its cohort.
    select
        first_visits.first_week_start_local as cohort_week_local,
        count(*) as cohort_size
    from {{ ref('int_customer_first_visits') }} as first_visits
    {% if is_incremental() -%}
        where first_visits.first_week_start_local in (select changed.cohort_week_local from changed)
    {%- endif %}
    group by first_visits.first_week_start_local

),

activity as (

    select
        customer_weeks.first_week_start_local as cohort_week_local,
        cast(
            {{ days_between('customer_weeks.first_week_start_local', 'customer_weeks.week_start_local') }} / 7
            as integer
        ) as weeks_since_first,
        count(distinct customer_weeks.customer_key) as active_customers
    from {{ ref('int_customer_branch_weeks') }} as customer_weeks
    {% if is_incremental() -%}
        where exists (
            select 1
            from changed
            where
                changed.cohort_week_local = customer_weeks.first_week_start_local
                and (
                    changed.week_start_local is null
                    or changed.week_start_local = customer_weeks.week_start_local
                )
        )
    {%- endif %}
    group by customer_weeks.first_week_start_local, customer_weeks.week_start_local

),

final as (

    select
        cast(activity.cohort_week_local as date) as cohort_week_local,
        cast({{ local_to_utc('cast(activity.cohort_week_local as timestamp)') }} as timestamptz)
            as cohort_week_utc,
        cast(activity.weeks_since_first as integer) as weeks_since_first,
        cast(cohorts.cohort_size as integer) as cohort_size,
        cast(activity.active_customers as integer) as active_customers,
        cast(round(1.0 * activity.active_customers / cohorts.cohort_size, 4) as numeric(6, 4))
            as retention_rate
    from activity
    inner join cohorts
        on activity.cohort_week_local = cohorts.cohort_week_local

)

select * from final
