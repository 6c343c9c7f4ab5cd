{#
    One row per card hash that a key rotation linked to an older one: the customer it
    belongs to. The one home of the identity rule. During a rotation's overlap window the
    loader hashes each card with both keys and links the two hashes (`stg_till__card_links`);
    following the links back to the oldest hash gives the customer key, which later
    rotations never change. A hash without a link is its own customer and has no row here
    (`int_build_transactions` keeps it as it is). A card first seen after the window closed
    has no link: to the warehouse it is a new customer, as nothing can tell otherwise.
#}
{{ config(
    materialized='table',
    post_hook="{{ analyze_for_planner() }}",
    dist='all' if target.type == 'redshift' else none,
) }}

with recursive

links as (

    select
        card_hash,
        previous_card_hash
    from {{ ref('stg_till__card_links') }}

),

-- Each linked hash with every older hash it leads to, one step further per round. Links
-- point from a newer key to an older one, so the walk ends; the depth bound only guards
-- against a cycle that a hand-edited table could hold.
walks (card_hash, older_hash, steps) as (

    select
        card_hash,
        previous_card_hash,
        1
    from links

    union all

    select
        walks.card_hash,
        links.previous_card_hash,
        walks.steps + 1
    from walks
    inner join links
        on walks.older_hash = links.card_hash
    where walks.steps < 100

),

oldest as (

    select
        card_hash,
        older_hash,
        steps,
        row_number() over (
            partition by card_hash order by steps desc, older_hash asc
        ) as rank_from_oldest
    from walks

),

final as (

    select
        card_hash,
        older_hash as customer_key,
        steps as rotations_back
    from oldest
    where rank_from_oldest = 1

)

select * from final
