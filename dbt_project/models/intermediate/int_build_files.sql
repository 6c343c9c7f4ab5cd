-- The file versions this build works on: the ledger's current versions, read once, first.
-- Every model that reads transactions reads them through this snapshot, so a load that
-- commits while the build runs is in all of them or in none (it joins the next build).
{{ config(
    materialized='table',
    post_hook="{{ analyze_for_planner() }}",
    dist='all' if target.type == 'redshift' else none,
) }}

with

ledger as (

    select * from {{ ref('stg_till__loaded_files') }}

),

final as (

    select
        source_key,
        -- The type the facts keep it in, so that their index on it serves the comparison.
        cast(file_checksum as varchar(64)) as file_checksum,
        load_id,
        branch_name,
        rows_loaded,
        finished_at_utc,
        rows_revised_at_utc,
        {{ current_timestamp_utc() }} as snapshot_taken_at_utc
    from ledger
    where is_current

)

select * from final
