{#
    One row per complete build: a build that built every other model of the project and
    ran their tests. It comes after all of them (its parents are the models nothing else
    reads), so dbt skips it when any of them failed, was skipped or had a failing integrity
    test, and runs it after every data test (a test waits only for its models: dbt runs a
    model after the tests of everything upstream of it); a run that did not select every
    model (`--select`) records nothing. The
    changes since the last row here stay pending, and the next build takes them in again.
    Once a build is complete, the superseded footprints and the build's changes go (its
    post-hooks): nothing of a forgotten card outlives the build that forgot it.
#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    post_hook=[
        "{{ forget_changes_taken_in('int_file_footprints', 'superseded_at_utc') }}",
        "{{ forget_changes_taken_in('int_build_changes', 'changed_at_utc') }}",
    ],
    dist='all' if target.type == 'redshift' else none,
) }}
{#- After every other model of the project (they are all upstream of these), so that dbt
    also runs it after every data test: a test waits for nothing but its models. #}
-- depends_on: {{ ref('dim_customers') }}
-- depends_on: {{ ref('dim_payment_methods') }}
-- depends_on: {{ ref('dim_product_prices') }}
-- depends_on: {{ ref('rpt_branch_freshness') }}
-- depends_on: {{ ref('rpt_build_results') }}
-- depends_on: {{ ref('rpt_cohort_retention') }}
-- depends_on: {{ ref('rpt_customers_weekly') }}
-- depends_on: {{ ref('rpt_daily_branch_sales') }}
-- depends_on: {{ ref('rpt_file_loads') }}
-- depends_on: {{ ref('rpt_hourly_footfall') }}
-- depends_on: {{ ref('rpt_payment_mix_daily') }}
-- depends_on: {{ ref('rpt_product_sales_daily') }}
-- depends_on: {{ ref('rpt_rejection_reasons_daily') }}

{#- Every model upstream of this one must be in the run's selection. -#}
{%- set unselected = [] -%}
{%- if execute -%}
    {%- set pending = model.depends_on.nodes | list -%}
    {%- set seen = [] -%}
    {%- for _ in range(100000) if pending -%}
        {%- set node_id = pending.pop() -%}
        {%- if node_id.startswith('model.') and node_id not in seen -%}
            {%- do seen.append(node_id) -%}
            {%- if node_id not in selected_resources -%}
                {%- do unselected.append(node_id) -%}
            {%- endif -%}
            {%- do pending.extend(graph.nodes[node_id].depends_on.nodes) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif %}

with

build_files as (

    select max(snapshot_taken_at_utc) as snapshot_taken_at_utc
    from {{ ref('int_build_files') }}

),

final as (

    select
        cast(snapshot_taken_at_utc as timestamptz) as snapshot_taken_at_utc,
        cast({{ current_timestamp_utc() }} as timestamptz) as completed_at_utc
    from build_files
    where
        snapshot_taken_at_utc is not null
        {%- if unselected %}
            -- not selected this run: {{ unselected | sort | join(', ') }}
            and 1 = 0
        {%- endif %}

)

select * from final
