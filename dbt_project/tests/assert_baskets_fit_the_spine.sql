-- Integrity: the largest basket of the build fits the numbers spine that explodes baskets
-- (int_numbers); items past its end would go missing from fct_transaction_items. The
-- loader's line contract allows far fewer items (loader/contract.py MAX_BASKET_ITEMS).
{{ config(group='core') }}  {# reads the core group's private snapshot models #}
with

baskets as (

    select max({{ basket_item_count('basket') }}) as largest_basket
    from {{ ref('int_build_transactions') }}

),

spine as (

    select count(*) as spine_size
    from {{ ref('int_numbers') }}

)

select
    baskets.largest_basket,
    spine.spine_size
from baskets
cross join spine
where baskets.largest_basket > spine.spine_size
