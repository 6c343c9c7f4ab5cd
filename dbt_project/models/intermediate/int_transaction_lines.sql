-- One row per (transaction, product): the basket text exploded into items and repeats counted.
-- Incremental like the facts (whole files, delete+insert on source_key): exploding every
-- basket is the most expensive step of the build, so each file version is parsed once.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='source_key',
    on_schema_change='fail',
    post_hook="{{ delete_superseded_file_rows() }}",
    dist='transaction_id' if target.type == 'redshift' else none,
    sort=['source_key'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('stg_till__loaded_files') }}

with

transactions as (

    select
        transaction_id,
        source_key,
        file_checksum,
        transacted_at_utc,
        basket,
        loaded_at
    from {{ ref('stg_till__transactions') }}
    {% if is_incremental() -%}
        where source_key in ({{ files_to_rebuild() }})
    {%- endif %}

),

spine as (

    select n from {{ ref('int_numbers') }}
    where n <= {{ var('max_basket_items') }}

),

items as (

    select
        transactions.transaction_id,
        transactions.source_key,
        transactions.file_checksum,
        transactions.transacted_at_utc,
        transactions.loaded_at,
        spine.n as item_position,
        trim(split_part(transactions.basket, ', ', spine.n)) as item_text
    from transactions
    inner join spine
        on spine.n <= (length(transactions.basket) - length(replace(transactions.basket, ', ', ''))) / 2 + 1

),

priced as (

    -- `Size Product[ - Flavour] - price`: the price follows the last ` - `.
    select
        transaction_id,
        source_key,
        file_checksum,
        transacted_at_utc,
        loaded_at,
        item_position,
        item_text,
        split_part(item_text, ' ', 1) as size,
        reverse(split_part(reverse(item_text), ' - ', 1)) as price_text
    from items

),

described as (

    select
        transaction_id,
        source_key,
        file_checksum,
        transacted_at_utc,
        loaded_at,
        size,
        cast(price_text as numeric(12, 2)) as unit_price,
        substring(
            item_text,
            length(size) + 2,
            length(item_text) - length(size) - 1 - length(price_text) - 3
        ) as described_product
    from priced

),

parsed as (

    -- A flavour, when present, is everything after the product's first ` - `
    -- (`Frappes - Strawberries & Cream`).
    select
        transaction_id,
        source_key,
        file_checksum,
        transacted_at_utc,
        loaded_at,
        size,
        unit_price,
        split_part(described_product, ' - ', 1) as product,
        case
            when position(' - ' in described_product) > 0
                then substring(described_product, position(' - ' in described_product) + 3)
        end as flavour
    from described

),

keyed as (

    select
        *,
        {{ dbt.hash(dbt.concat([
            'size', "'|'", 'product', "'|'", "coalesce(flavour, '')"
        ])) }} as product_key
    from parsed

),

final as (

    select
        {{ dbt.hash(dbt.concat(['transaction_id', "'|'", 'product_key'])) }} as transaction_item_id,
        transaction_id,
        source_key,
        file_checksum,
        transacted_at_utc,
        product_key,
        size,
        product,
        flavour,
        cast(count(*) as integer) as quantity,
        cast(max(unit_price) as numeric(12, 2)) as unit_price,
        cast(sum(unit_price) as numeric(12, 2)) as line_amount,
        loaded_at
    from keyed
    group by
        transaction_id, source_key, file_checksum, transacted_at_utc, loaded_at,
        product_key, size, product, flavour

)

select * from final
