-- Refused lines. raw_line stays in raw: it can hold a customer's name. The reason leaves
-- raw only in the contract's shape, `<field>: <rule>`, which carries no value of the line;
-- a reason written before the line contract quoted the value, so only its field leaves.
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
        rejected_at as rejected_at_utc,
        -- Before the first `:` (the contract) or `"` (older reasons quoted the value).
        replace(lower(trim(split_part(split_part(reason, ':', 1), '"', 1))), ' ', '_')
            as named_field
    from source

),

classified as (

    select
        *,
        named_field in ({{ sql_text_list(var('rejection_reason_fields')) }}) as is_known_field
    from renamed

),

final as (

    select
        {{ dbt.hash(dbt.concat(['source_key', "'|'", 'line_number'])) }} as rejected_row_id,
        source_key,
        file_checksum,
        line_number,
        case when is_known_field then named_field else 'other' end as reason_field,
        case
            when is_known_field and position(':' in reason) > 0 and position('"' in reason) = 0
                then reason
        end as reason,
        rejected_at_utc
    from classified

)

select * from final
