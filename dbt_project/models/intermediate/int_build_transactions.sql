-- The transactions of the files this build works on (int_build_files): what every model
-- downstream of staging reads, so that all of them see the same files. Here the card hash
-- becomes the customer: the same person across card-key rotations (int_customer_identities).
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

identities as (

    select
        card_hash,
        customer_key
    from {{ ref('int_customer_identities') }}

),

final as (

    select
        transactions.*,
        coalesce(identities.customer_key, transactions.card_hash) as customer_key
    from transactions
    inner join build_files
        on
            transactions.source_key = build_files.source_key
            and transactions.file_checksum = build_files.file_checksum
    left join identities
        on transactions.card_hash = identities.card_hash

)

select * from final
