{#
    The basket grammar of the line contract (loader/contract.py): items joined by `, `,
    each `<size> <product>[ - <flavour>] - <price>`. The loader refuses a line that does
    not parse; the models still take any text apart without an error, because rows loaded
    before the contract (or by a faulty loader) stay in `raw`: what does not parse is
    counted as an unreadable item, never cast.
#}

{# Items in a basket: one more than its `, ` separators. #}
{% macro basket_item_count(basket) -%}
    ((length({{ basket }}) - length(replace({{ basket }}, ', ', ''))) / 2 + 1)
{%- endmacro %}


{# True when a text is a price of the contract: up to 6 digits and up to 2 decimals. #}
{% macro is_contract_amount(text) -%}
    coalesce({{ text }} ~ '^[0-9]{1,6}([.][0-9]{1,2})?$', false)
{%- endmacro %}
