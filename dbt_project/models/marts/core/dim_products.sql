-- One row per sellable product: size × drink × flavour, flagged where the vocabulary
-- (the product_sizes and product_categories seeds) does not know it. Read from the
-- products' daily price runs (int_product_price_runs: a few rows per product and day, not
-- every basket line), so the vocabulary costs the same every build.
{{ config(dist='all' if target.type == 'redshift' else none) }}

with

lines as (

    select distinct
        product_key,
        size,
        product,
        flavour
    from {{ ref('int_product_price_runs') }}

),

categories as (

    select
        product_name,
        product_category
    from {{ ref('product_categories') }}

),

sizes as (

    select size from {{ ref('product_sizes') }}

),

final as (

    select
        cast(lines.product_key as varchar(32)) as product_key,
        cast(
            lines.size || ' ' || lines.product
            || coalesce(' - ' || lines.flavour, '') as varchar(256)
        ) as product_name,
        cast(lines.size as varchar(16)) as size,
        cast(lines.product as varchar(256)) as base_product_name,
        cast(lines.flavour as varchar(256)) as flavour,
        cast(coalesce(categories.product_category, 'Other') as varchar(32)) as product_category,
        sizes.size is not null as is_known_size,
        categories.product_name is not null as is_known_product
    from lines
    left join categories
        on lines.product = categories.product_name
    left join sizes
        on lines.size = sizes.size

)

select * from final
