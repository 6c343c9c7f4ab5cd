-- One row per branch that has traded.
{{ config(dist='all' if target.type == 'redshift' else none) }}

with

transactions as (

    select
        branch_name,
        transacted_at_utc
    from {{ ref('int_build_transactions') }}

),

final as (

    select
        cast({{ dbt.hash('branch_name') }} as varchar(32)) as branch_key,
        cast(branch_name as varchar(256)) as branch_name,
        cast(min(transacted_at_utc) as timestamptz) as first_transaction_at_utc,
        cast(max(transacted_at_utc) as timestamptz) as last_transaction_at_utc
    from transactions
    group by branch_name

)

select * from final
