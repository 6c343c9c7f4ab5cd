-- One row per load attempt of a file: what the loader did and how long it took. A view over
-- the ledger, so Pipeline health sees a load as it happens, not after the next build, and
-- an attempt that died (still `started` past var started_load_dead_after_minutes, by the
-- reader's clock) shows as abandoned.
{{ config(materialized='view') }}

with

loads as (

    select * from {{ ref('stg_till__loaded_files') }}

),

final as (

    select
        cast(load_id as varchar(36)) as load_id,
        cast(source_key as varchar(1024)) as source_key,
        cast(branch_name as varchar(256)) as branch_name,
        cast(status as varchar(16)) as status,
        cast(is_current as boolean) as is_current,
        cast(file_exported_at_utc as timestamptz) as file_exported_at_utc,
        cast(started_at_utc as timestamptz) as started_at_utc,
        cast(finished_at_utc as timestamptz) as finished_at_utc,
        {{ seconds_between('file_exported_at_utc', 'finished_at_utc') }} as load_lag_seconds,
        cast(rows_read as integer) as rows_read,
        cast(rows_loaded as integer) as rows_loaded,
        cast(rows_rejected as integer) as rows_rejected,
        cast(error_text as varchar(4096)) as error_text,
        cast(duplicate_of as varchar(1024)) as duplicate_of,
        cast(source_modified_at_utc as timestamptz) as source_modified_at_utc,
        cast(file_encoding as varchar(16)) as file_encoding,
        cast(unknown_columns as varchar(4096)) as unknown_columns,
        coalesce(unknown_columns, '') <> '' as has_unknown_columns,
        coalesce(
            status = 'started'
            and {{ seconds_between('started_at_utc', current_timestamp_utc()) }}
            > {{ var('started_load_dead_after_minutes') }} * 60,
            false
        ) as is_abandoned
    from loads

)

select * from final
