-- Refused lines per UTC day, branch and the field their reason names.
with

rejected as (

    select * from {{ ref('stg_till__rejected_rows') }}

),

files as (

    select
        source_key,
        file_checksum,
        branch_name
    from {{ ref('stg_till__loaded_files') }}
    where is_current

),

categorised as (

    select
        {{ utc_day_start('rejected.rejected_at_utc') }} as day_utc,
        coalesce(files.branch_name, 'unknown') as branch_name,
        rejected.reason_field as reason_category
    from rejected
    left join files
        on
            rejected.source_key = files.source_key
            and rejected.file_checksum = files.file_checksum

),

final as (

    select
        cast(day_utc as timestamptz) as day_utc,
        cast(branch_name as varchar(256)) as branch_name,
        cast(reason_category as varchar(1024)) as reason_category,
        cast(count(*) as integer) as rejected_rows
    from categorised
    group by day_utc, branch_name, reason_category

)

select * from final
