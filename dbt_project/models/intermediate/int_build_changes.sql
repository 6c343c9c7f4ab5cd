{#
    The footprint rows (int_file_footprints) added or superseded since the last complete
    build: what this build's incremental models that aggregate across files take in, the
    days, branches and customers of each changed file version before and after its change
    (macros/incremental_changes.sql). A small table, read once per build and analyzed, so
    every model that reads it plans for the few rows it holds.
#}
{{ config(
    materialized='table',
    post_hook="{{ analyze_for_planner() }}",
    dist='all' if target.type == 'redshift' else none,
) }}

with

footprints as (

    select * from {{ ref('int_file_footprints') }}

),

final as (

    select *
    from footprints
    where changed_at_utc > {{ last_complete_build_at() }}

)

select * from final
