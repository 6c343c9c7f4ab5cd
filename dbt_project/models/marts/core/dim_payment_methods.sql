-- The ways a till takes payment (the payment_methods seed), with the unknown member.
{{ config(dist='all' if target.type == 'redshift' else none) }}

with

methods as (

    select * from {{ ref('payment_methods') }}

),

final as (

    select
        cast(payment_method as varchar(8)) as payment_method,
        cast(identifies_customer as boolean) as identifies_customer,
        cast(description as varchar(256)) as description
    from methods

)

select * from final
