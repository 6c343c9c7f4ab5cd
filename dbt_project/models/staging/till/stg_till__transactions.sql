-- One row per till transaction (a CSV line). customer_name is left behind in raw. The card
-- hash is the card's pseudonym under one key version; int_build_transactions turns it into
-- the customer (the same across key rotations).
-- Nothing here can raise on a value: an unreadable till time becomes null, a payment type
-- outside the contract becomes `Unknown` (dim_payment_methods' unknown member).
with

source as (

    select * from {{ source('till', 'transactions') }}

),

renamed as (

    select
        source_key,
        line_number,
        file_checksum,
        {{ parse_till_timestamp('transaction_date') }} as transacted_at_local,
        branch_name,
        basket,
        total_amount,
        case payment_type when 'CARD' then 'Card' when 'CASH' then 'Cash' else 'Unknown' end
            as payment_method,
        card_hash,
        card_key_version,
        loaded_at
    from source

),

final as (

    select
        {{ dbt.hash(dbt.concat(['source_key', "'|'", 'line_number'])) }} as transaction_id,
        source_key,
        line_number,
        file_checksum,
        transacted_at_local,
        {{ local_to_utc('transacted_at_local') }} as transacted_at_utc,
        branch_name,
        basket,
        total_amount,
        payment_method,
        card_hash,
        card_key_version,
        loaded_at
    from renamed

)

select * from final
