-- Integers 1..10000: the spine that explodes baskets and spans the calendar.
{{ config(materialized='table') }}

with

digits as (

    select {{ numbers_value(4) }} as n
    from {{ numbers_spine(4) }}

),

final as (

    select cast(n as integer) as n from digits

)

select * from final
