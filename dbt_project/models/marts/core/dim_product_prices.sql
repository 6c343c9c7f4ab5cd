-- One row per period during which a product sold at one price (observed, not a price list).
{{ config(dist='all' if target.type == 'redshift' else none) }}

with

observations as (

    select distinct
        product_key,
        transacted_at_utc,
        unit_price
    from {{ ref('int_transaction_lines') }}
    where transacted_at_utc is not null

),

changes as (

    select
        product_key,
        transacted_at_utc,
        unit_price,
        case
            when lag(unit_price) over (
                partition by product_key order by transacted_at_utc, unit_price
            ) = unit_price then 0
            else 1
        end as is_new_price
    from observations

),

islands as (

    select
        product_key,
        transacted_at_utc,
        unit_price,
        sum(is_new_price) over (
            partition by product_key order by transacted_at_utc, unit_price
            rows between unbounded preceding and current row
        ) as price_period
    from changes

),

periods as (

    select
        product_key,
        price_period,
        min(unit_price) as unit_price,
        min(transacted_at_utc) as valid_from,
        max(transacted_at_utc) as last_seen_at_utc
    from islands
    group by product_key, price_period

),

final as (

    select
        cast(
            {{ dbt.hash(dbt.concat(['product_key', "'|'", 'cast(price_period as varchar(16))'])) }}
            as varchar(32)
        ) as product_price_id,
        cast(product_key as varchar(32)) as product_key,
        cast(unit_price as numeric(12, 2)) as unit_price,
        cast(valid_from as timestamptz) as valid_from,
        cast(lead(valid_from) over (partition by product_key order by valid_from) as timestamptz)
            as valid_to,
        cast(last_seen_at_utc as timestamptz) as last_seen_at_utc
    from periods

)

select * from final
