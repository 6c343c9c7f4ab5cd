-- The transactions of the files this build works on (int_build_files): what every model
-- downstream of staging reads, so that all of them see the same files.
with

transactions as (

    select * from {{ ref('stg_till__transactions') }}

),

build_files as (

    select
        source_key,
        file_checksum
    from {{ ref('int_build_files') }}

),

final as (

    select transactions.*
    from transactions
    inner join build_files
        on
            transactions.source_key = build_files.source_key
            and transactions.file_checksum = build_files.file_checksum

)

select * from final
