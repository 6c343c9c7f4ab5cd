-- The file versions this build works on: the ledger's current versions, read once, first.
-- Every model that reads transactions reads them through this snapshot, so a load that
-- commits while the build runs is in all of them or in none (it joins the next build).
{{ config(
    materialized='table',
    dist='all' if target.type == 'redshift' else none,
) }}

with

ledger as (

    select * from {{ ref('stg_till__loaded_files') }}

),

final as (

    select
        source_key,
        file_checksum,
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
