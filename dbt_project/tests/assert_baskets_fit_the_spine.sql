-- Fails for every basket with more items than the spine explodes (var max_basket_items):
-- those items would silently go missing from fct_transaction_items.
select
    transaction_id,
    (length(basket) - length(replace(basket, ', ', ''))) / 2 + 1 as item_count
from {{ ref('stg_till__transactions') }}
where (length(basket) - length(replace(basket, ', ', ''))) / 2 + 1 > {{ var('max_basket_items') }}
