-- One row per sellable product: size × drink × flavour.
{{ config(dist='all' if target.type == 'redshift' else none) }}

with

lines as (

    select distinct
        product_key,
        size,
        product,
        flavour
    from {{ ref('int_transaction_lines') }}

),

categories as (

    select
        product_name,
        product_category
    from {{ ref('product_categories') }}

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
        cast(coalesce(categories.product_category, 'Other') as varchar(32)) as product_category
    from lines
    left join categories
        on lines.product = categories.product_name

)

select * from final
