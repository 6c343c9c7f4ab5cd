-- The two ways a customer can pay.
{{ config(dist='all' if target.type == 'redshift' else none) }}

with

methods as (

    select
        'Card' as payment_method,
        true as identifies_customer,
        'Paid by card; the card''s keyed hash identifies a returning customer.' as description
    union all
    select
        'Cash' as payment_method,
        false as identifies_customer,
        'Paid in cash; the customer is anonymous.' as description

),

final as (

    select
        cast(payment_method as varchar(8)) as payment_method,
        cast(identifies_customer as boolean) as identifies_customer,
        cast(description as varchar(256)) as description
    from methods

)

select * from final
