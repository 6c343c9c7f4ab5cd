-- Per branch: when its last file was exported and loaded, and whether it has gone silent.
-- A view, so ages use the clock of the query that reads it (Grafana's alert every few
-- minutes), not the build's: the silent-branch alert fires `silent_after_hours` after the
-- last export whenever the build runs. It reads the ledger live for the same reason.
{{ config(materialized='view') }}

with

loads as (

    select * from {{ ref('stg_till__loaded_files') }}
    where status in ('loaded', 'replaced') and branch_name is not null

),

latest as (

    select
        branch_name,
        max(file_exported_at_utc) as last_file_exported_at_utc,
        max(finished_at_utc) as last_loaded_at_utc
    from loads
    group by branch_name

),

aged as (

    select
        branch_name,
        last_file_exported_at_utc,
        last_loaded_at_utc,
        {{ seconds_between('last_file_exported_at_utc', current_timestamp_utc()) }}
            as seconds_since_last_file
    from latest

),

final as (

    select
        cast(branch_name as varchar(256)) as branch_name,
        cast(last_file_exported_at_utc as timestamptz) as last_file_exported_at_utc,
        cast(last_loaded_at_utc as timestamptz) as last_loaded_at_utc,
        cast(round(seconds_since_last_file / 3600.0, 2) as numeric(12, 2)) as hours_since_last_file,
        cast({{ var('expected_file_interval_hours') }} as integer) as expected_interval_hours,
        coalesce(seconds_since_last_file > {{ var('silent_after_hours') }} * 3600, true) as is_silent
    from aged

)

select * from final
