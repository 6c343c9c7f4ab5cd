-- One row per branch that has traded. Read from the current file footprints; incremental
-- by branch: a branch that changed file versions touch is worked out again (and goes when
-- nothing of it is left).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_changed_groups(['branch_key'], changed_branches()) }}",
    post_hook="{{ analyze_for_planner(when_unknown=true) }}",
    dist='all' if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_build_changes') }}

with

{% if is_incremental() -%}
    changed_branches as (

        {{ changed_branches() }}

    ),
{%- endif %}

footprints as (

    select
        footprints.branch_name,
        footprints.first_transacted_at_utc,
        footprints.last_transacted_at_utc
    from {{ ref('int_file_footprints') }} as footprints
    {% if is_incremental() -%}
        inner join changed_branches
            on footprints.branch_name = changed_branches.branch_name
    {%- endif %}
    where footprints.is_current

),

final as (

    select
        cast({{ dbt.hash('branch_name') }} as varchar(32)) as branch_key,
        cast(branch_name as varchar(256)) as branch_name,
        cast(min(first_transacted_at_utc) as timestamptz) as first_transaction_at_utc,
        cast(max(last_transacted_at_utc) as timestamptz) as last_transaction_at_utc
    from footprints
    group by branch_name

)

select * from final
