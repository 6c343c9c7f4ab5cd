-- One row per (transaction, product): the basket text exploded into items and repeats counted.
-- Incremental like the facts (whole files, delete+insert on source_key, file list from the
-- build's snapshot): exploding every basket is the most expensive step of the build, so
-- each file version is parsed once.
{{ config(
    materialized='incremental',
    incremental_strategy='replace_files',
    unique_key='source_key',
    on_schema_change='fail',
    post_hook=["{{ delete_superseded_file_rows() }}", "{{ analyze_for_planner(when_unknown=true) }}"],
    indexes=[
        {'columns': ['source_key', 'file_checksum']},
        {'columns': ['transacted_at_utc']},
    ] if target.type == 'postgres' else none,
    dist='transaction_id' if target.type == 'redshift' else none,
    sort=['source_key'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_build_files') }}
-- depends_on: {{ ref('stg_till__loaded_files') }}

with

transactions as (

    select
        transaction_id,
        source_key,
        file_checksum,
        transacted_at_utc,
        basket,
        {{ basket_item_count('basket') }} as basket_items,
        loaded_at
    from {{ ref('int_build_transactions') }}
    {% if is_incremental() -%}
        where {{ in_list('source_key', files_to_rebuild()) }}
    {%- endif %}

),

spine as {{ materialized_cte() }} (

    -- Only as many numbers as the largest basket has items (computed once, not per
    -- basket).
    select numbers.n
    from {{ ref('int_numbers') }} as numbers
    where numbers.n <= (select max(transactions.basket_items) from transactions)

),

items as {{ materialized_cte() }} (

    select
        transactions.transaction_id,
        transactions.source_key,
        transactions.file_checksum,
        transactions.transacted_at_utc,
        transactions.loaded_at,
        trim(split_part(transactions.basket, ', ', spine.n)) as item_text
    from transactions
    inner join spine
        on transactions.basket_items >= spine.n

),

priced as (

    -- `Size Product[ - Flavour] - price`: the size is the first word, the price follows
    -- the last ` - `.
    select
        *,
        split_part(item_text, ' ', 1) as size,
        case
            when position(' - ' in item_text) > 0
                then reverse(split_part(reverse(item_text), ' - ', 1))
        end as price_text
    from items

),

described as (

    -- What lies between the size and ` - <price>`; never a negative length.
    select
        *,
        length(item_text) - length(size) - 1 - length(price_text) - 3 as described_length
    from priced

),

split_up as (

    select
        transaction_id,
        source_key,
        file_checksum,
        transacted_at_utc,
        loaded_at,
        size,
        case
            when {{ is_contract_amount('price_text') }} then cast(price_text as numeric(12, 2))
        end as unit_price,
        case
            when described_length > 0
                then substring(item_text from length(size) + 2 for described_length)
        end as described_product
    from described

),

parsed as {{ materialized_cte() }} (

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
        trim(split_part(described_product, ' - ', 1)) as product,
        case
            when position(' - ' in described_product) > 0
                then nullif(trim(substring(
                    described_product from position(' - ' in described_product) + 3
                )), '')
        end as flavour
    from split_up

),

readable as (

    select
        *,
        {{ dbt.hash(dbt.concat([
            'size', "'|'", 'product', "'|'", "coalesce(flavour, '')"
        ])) }} as product_key
    from parsed
    where unit_price is not null and size <> '' and product <> ''

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
    from readable
    group by
        transaction_id, source_key, file_checksum, transacted_at_utc, loaded_at,
        product_key, size, product, flavour

)

select * from final
