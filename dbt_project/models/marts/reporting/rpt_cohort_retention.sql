-- Weekly cohorts of card customers (by first visit) and how many come back each later week.
with

customer_weeks as (

    select distinct
        customer_key,
        week_start_local,
        first_week_start_local
    from {{ ref('int_customer_branch_weeks') }}

),

cohorts as (

    select
        first_week_start_local as cohort_week_local,
        count(distinct customer_key) as cohort_size
    from customer_weeks
    group by first_week_start_local

),

activity as (

    select
        first_week_start_local as cohort_week_local,
        cast(
            {{ days_between('first_week_start_local', 'week_start_local') }} / 7
            as integer
        ) as weeks_since_first,
        count(distinct customer_key) as active_customers
    from customer_weeks
    group by first_week_start_local, week_start_local

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
