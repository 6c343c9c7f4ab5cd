-- New, returning and active card customers per café-local ISO week and branch. Incremental
-- by (week, branch): where changed customers' rows are, before and after the change, and
-- where a first visit may have moved from or to (macros/customer_changes.sql).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_changed_groups(['week_start_local', 'branch_name'], changed_customer_weeks()) }}",
    post_hook="{{ analyze_for_planner(when_unknown=true) }}",
    indexes=[{'columns': ['week_start_utc', 'branch_name']}] if target.type == 'postgres' else none,
    dist='all' if target.type == 'redshift' else none,
    sort=['week_start_utc', 'branch_name'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_build_changes') }}
-- depends_on: {{ ref('int_file_footprints') }}

with

customer_weeks as (

    select customer_weeks.* from {{ ref('int_customer_branch_weeks') }} as customer_weeks
    {% if is_incremental() -%}
        where exists (
            select 1
            from ({{ changed_customer_weeks() }}) as changed
            where
                changed.week_start_local = customer_weeks.week_start_local
                and changed.branch_name = customer_weeks.branch_name
        )
    {%- endif %}

),

weekly as (

    select
        week_start_local,
        branch_name,
        sum(case when is_new_customer then 1 else 0 end) as new_customers,
        sum(case when is_new_customer then 0 else 1 end) as returning_customers,
        count(*) as active_customers
    from customer_weeks
    group by week_start_local, branch_name

),

final as (

    select
        cast(week_start_local as date) as week_start_local,
        cast({{ local_to_utc('cast(week_start_local as timestamp)') }} as timestamptz) as week_start_utc,
        cast(branch_name as varchar(256)) as branch_name,
        cast(new_customers as integer) as new_customers,
        cast(returning_customers as integer) as returning_customers,
        cast(active_customers as integer) as active_customers
    from weekly

)

select * from final
