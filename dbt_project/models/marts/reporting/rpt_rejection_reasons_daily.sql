-- Refused lines per UTC day, branch and the field their reason names. Incremental by day:
-- a load writes its refused lines in its own transaction (and a re-export deletes its
-- earlier version's), so the UTC days of every attempt of a key whose current version no
-- complete build has taken in are counted again (macros/incremental_changes.sql).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_changed_groups(['day_utc'], changed_rejection_days()) }}",
    post_hook="{{ analyze_for_planner(when_unknown=true) }}",
    indexes=[{'columns': ['day_utc']}] if target.type == 'postgres' else none,
    dist='all' if target.type == 'redshift' else none,
    sort=['day_utc'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_file_footprints') }}
-- depends_on: {{ ref('stg_till__loaded_files') }}

with

rejected as (

    select rejected.* from {{ ref('stg_till__rejected_rows') }} as rejected
    {% if is_incremental() -%}
        where {{ utc_day_start('rejected.rejected_at_utc') }} in (
            select changed.day_utc from ({{ changed_rejection_days() }}) as changed
        )
    {%- endif %}

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
