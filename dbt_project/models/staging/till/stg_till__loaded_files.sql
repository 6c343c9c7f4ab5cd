-- The load ledger: one row per load attempt of a file version. The header line as read
-- (file_header) stays in raw: a header mistaken for a data line could hold a name.
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
        loader_version,
        duplicate_of,
        source_modified_at as source_modified_at_utc,
        source_version,
        file_encoding,
        unknown_columns,
        rows_revised_at as rows_revised_at_utc
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
        loader_version,
        duplicate_of,
        source_modified_at_utc,
        source_version,
        file_encoding,
        unknown_columns,
        rows_revised_at_utc
    from renamed

)

select * from final
