-- Refused lines. raw_line stays in raw: it can hold a customer's name.
with

source as (

    select * from {{ source('till', 'rejected_rows') }}

),

renamed as (

    select
        source_key,
        file_checksum,
        line_number,
        reason,
        rejected_at as rejected_at_utc
    from source

),

final as (

    select
        {{ dbt.hash(dbt.concat(['source_key', "'|'", 'line_number'])) }} as rejected_row_id,
        source_key,
        file_checksum,
        line_number,
        reason,
        rejected_at_utc
    from renamed

)

select * from final
