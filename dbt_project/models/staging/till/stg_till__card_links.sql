-- Links between one card's hashes under two key versions (a rotation's overlap window).
with

source as (

    select * from {{ source('till', 'card_links') }}

),

renamed as (

    select
        card_hash,
        card_key_version,
        previous_card_hash,
        previous_key_version,
        linked_at as linked_at_utc
    from source

),

final as (

    select
        {{ dbt.hash(dbt.concat(['card_hash', "'|'", 'previous_card_hash'])) }} as card_link_id,
        card_hash,
        card_key_version,
        previous_card_hash,
        previous_key_version,
        linked_at_utc
    from renamed

)

select * from final
