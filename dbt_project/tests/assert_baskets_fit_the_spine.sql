-- Integrity: the largest basket of the build fits the numbers spine that explodes baskets
-- (int_numbers); items past its end would go missing from fct_transaction_items. The
-- loader's line contract allows far fewer items (loader/contract.py MAX_BASKET_ITEMS).
{{ config(group='core') }}  {# reads the core group's private snapshot models #}
-- depends_on: {{ ref('int_build_changes') }}
with

baskets as (

    select max({{ basket_item_count('transactions.basket') }}) as largest_basket
    from {{ ref('int_build_transactions') }} as transactions
    {#- An incremental build looks at the files whose footprint changed since the last
        complete build: the spine does not change, and the other files' baskets fitted. #}
    {%- if checks_only_changes() %}
        where {{ in_list(
            'transactions.source_key',
            'select distinct changes.source_key from ' ~ ref('int_build_changes') ~ ' as changes'
        ) }}
    {%- endif %}

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
