{#
    One row per product × café-local day × run of one price: the day's basket lines of the
    product in till-time order (then price, as dim_product_prices orders them), cut where
    the price changes. The compact record of what sold at which price that dim_products and
    dim_product_prices read instead of every basket line: a day's runs, read in order,
    continue the previous day's, so price periods are runs merged across days. Lines
    without a readable till time have no day: one row per product (run 0, no price) keeps
    them in the vocabulary.

    Incremental by day: the days that changed file versions touch (before and after the
    change, macros/incremental_changes.sql) are read again from the basket lines, one index
    range of till times each.
#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_changed_groups(['sales_date_local'], changed_price_days(), null_matches=true) }}",
    post_hook="{{ analyze_for_planner(when_unknown=true) }}",
    indexes=[{'columns': ['sales_date_local']}] if target.type == 'postgres' else none,
    dist='all' if target.type == 'redshift' else none,
    sort=['sales_date_local'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_build_changes') }}

with

{% if is_incremental() -%}
    changed_days as {{ materialized_cte() }} (

        select
            changed.sales_date_local,
            {{ local_to_utc('cast(changed.sales_date_local as timestamp)') }} as day_start_utc,
            {{ local_to_utc(
                'cast(' ~ dbt.dateadd('day', 1, 'changed.sales_date_local') ~ ' as timestamp)'
            ) }} as next_day_start_utc
        from ({{ changed_price_days() }}) as changed

    ),
{%- endif %}

lines as (

    select
        lines.product_key,
        lines.size,
        lines.product,
        lines.flavour,
        lines.transacted_at_utc,
        lines.unit_price,
        cast({{ utc_to_local('lines.transacted_at_utc') }} as date) as sales_date_local
    from {{ ref('int_transaction_lines') }} as lines
    {% if is_incremental() -%}
        inner join changed_days
            on
                lines.transacted_at_utc >= changed_days.day_start_utc
                and lines.transacted_at_utc < changed_days.next_day_start_utc
        union all
        select
            lines.product_key,
            lines.size,
            lines.product,
            lines.flavour,
            lines.transacted_at_utc,
            lines.unit_price,
            cast(null as date) as sales_date_local
        from {{ ref('int_transaction_lines') }} as lines
        where
            lines.transacted_at_utc is null
            and exists (
                select 1 from ({{ changed_price_days() }}) as changed
                where changed.sales_date_local is null
            )
    {%- endif %}

),

observations as (

    -- One per product, till time and price, as dim_product_prices has always counted them.
    select distinct
        product_key,
        size,
        product,
        flavour,
        sales_date_local,
        transacted_at_utc,
        unit_price
    from lines
    where sales_date_local is not null

),

changes as (

    select
        *,
        case
            when lag(unit_price) over (
                partition by product_key, sales_date_local order by transacted_at_utc, unit_price
            ) = unit_price then 0
            else 1
        end as is_new_price
    from observations

),

runs as (

    select
        *,
        sum(is_new_price) over (
            partition by product_key, sales_date_local order by transacted_at_utc, unit_price
            rows between unbounded preceding and current row
        ) as run_number
    from changes

),

priced as (

    select
        product_key,
        size,
        product,
        flavour,
        sales_date_local,
        run_number,
        min(unit_price) as unit_price,
        min(transacted_at_utc) as first_sold_at_utc,
        max(transacted_at_utc) as last_sold_at_utc
    from runs
    group by product_key, size, product, flavour, sales_date_local, run_number

),

undated as (

    select distinct
        product_key,
        size,
        product,
        flavour,
        cast(null as date) as sales_date_local,
        0 as run_number,
        cast(null as numeric(12, 2)) as unit_price,
        cast(null as timestamptz) as first_sold_at_utc,
        cast(null as timestamptz) as last_sold_at_utc
    from lines
    where sales_date_local is null

),

price_runs as (

    select * from priced
    union all
    select * from undated

),

final as (

    select
        cast(product_key as varchar(32)) as product_key,
        cast(size as varchar(16)) as size,
        cast(product as varchar(256)) as product,
        cast(flavour as varchar(256)) as flavour,
        cast(sales_date_local as date) as sales_date_local,
        cast(run_number as integer) as run_number,
        cast(unit_price as numeric(12, 2)) as unit_price,
        cast(first_sold_at_utc as timestamptz) as first_sold_at_utc,
        cast(last_sold_at_utc as timestamptz) as last_sold_at_utc
    from price_runs

)

select * from final
