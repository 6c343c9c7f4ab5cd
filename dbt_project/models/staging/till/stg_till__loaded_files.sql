-- The load ledger: one row per load attempt of a file version.
with

source as (

    select * from {{ source('till', 'loaded_files') }}

),

renamed as (

    select
        load_id,
        source_key,
        file_checksum,
        file_size_bytes,
        branch_name,
        file_exported_at as file_exported_at_local,
        status,
        is_current,
        rows_read,
        rows_loaded,
        rows_rejected,
        started_at as started_at_utc,
        finished_at as finished_at_utc,
        error_text,
        loader_version
    from source

),

final as (

    select
        load_id,
        source_key,
        file_checksum,
        file_size_bytes,
        branch_name,
        file_exported_at_local,
        {{ local_to_utc('file_exported_at_local') }} as file_exported_at_utc,
        status,
        is_current,
        rows_read,
        rows_loaded,
        rows_rejected,
        started_at_utc,
        finished_at_utc,
        error_text,
        loader_version
    from renamed

)

select * from final
