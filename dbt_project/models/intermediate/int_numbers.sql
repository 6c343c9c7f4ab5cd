-- Integers 1..10000: the spine that explodes baskets and spans the calendar.
{{ config(materialized='table', dist='all' if target.type == 'redshift' else none) }}

with

digits as (

    select {{ numbers_value(numbers_spine_digits()) }} as n
    from {{ numbers_spine(numbers_spine_digits()) }}

),

final as (

    select cast(n as integer) as n from digits

)

select * from final
