-- One row per period during which a product sold at one price (observed, not a price list).
-- Periods are the products' daily price runs (int_product_price_runs) read in order and
-- merged where a day ends at the price the next begins with: the same periods as every
-- basket line's (till time, price) in order, from a few rows per product and day.
{{ config(dist='all' if target.type == 'redshift' else none) }}

with

runs as (

    select
        product_key,
        sales_date_local,
        run_number,
        unit_price,
        first_sold_at_utc,
        last_sold_at_utc
    from {{ ref('int_product_price_runs') }}
    where sales_date_local is not null

),

changes as (

    select
        *,
        case
            when lag(unit_price) over (
                partition by product_key order by sales_date_local, run_number
            ) = unit_price then 0
            else 1
        end as is_new_price
    from runs

),

islands as (

    select
        product_key,
        unit_price,
        first_sold_at_utc,
        last_sold_at_utc,
        sum(is_new_price) over (
            partition by product_key order by sales_date_local, run_number
            rows between unbounded preceding and current row
        ) as price_period
    from changes

),

periods as (

    select
        product_key,
        price_period,
        min(unit_price) as unit_price,
        min(first_sold_at_utc) as valid_from,
        max(last_sold_at_utc) as last_seen_at_utc
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
