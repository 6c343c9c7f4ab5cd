-- One row per till transaction.
{{ config(
    materialized='incremental',
    incremental_strategy='replace_files',
    unique_key='source_key',
    on_schema_change='append_new_columns',
    post_hook=["{{ delete_superseded_file_rows() }}", "{{ analyze_for_planner(when_unknown=true) }}"],
    indexes=[
        {'columns': ['source_key', 'file_checksum']},
        {'columns': ['customer_key']},
        {'columns': ['sales_date_local', 'branch_key']},
    ] if target.type == 'postgres' else none,
    dist='transaction_id' if target.type == 'redshift' else none,
    sort=['sales_date_local', 'branch_key'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_customer_identities') }}
-- depends_on: {{ ref('stg_till__loaded_files') }}
{#- An erasure or a key rotation's link can change the customer of rows already built:
    those files are rebuilt too (macros/incremental_files.sql). #}

with

transactions as (

    select * from {{ ref('int_build_transactions') }}
    {% if is_incremental() -%}
        where {{ in_list('source_key', files_to_rebuild(customers=true)) }}
    {%- endif %}

),

build_files as (

    select
        source_key,
        rows_revised_at_utc
    from {{ ref('int_build_files') }}

),

lines as (

    select
        transaction_id,
        sum(line_amount) as items_total,
        sum(quantity) as item_count
    from {{ ref('int_transaction_lines') }}
    {% if is_incremental() -%}
        where {{ in_list('source_key', files_to_rebuild(customers=true)) }}
    {%- endif %}
    group by transaction_id

),

final as (

    select
        cast(transactions.transaction_id as varchar(32)) as transaction_id,
        cast(transactions.source_key as varchar(1024)) as source_key,
        cast(transactions.line_number as integer) as line_number,
        cast(transactions.file_checksum as varchar(64)) as file_checksum,
        cast(transactions.transacted_at_utc as timestamptz) as transacted_at_utc,
        cast(transactions.transacted_at_local as timestamp) as transacted_at_local,
        cast(transactions.transacted_at_local as date) as sales_date_local,
        cast({{ dbt.hash('transactions.branch_name') }} as varchar(32)) as branch_key,
        cast(transactions.payment_method as varchar(8)) as payment_method,
        cast(transactions.customer_key as varchar(64)) as customer_key,
        cast(transactions.total_amount as numeric(12, 2)) as total_amount,
        cast(coalesce(lines.items_total, 0) as numeric(12, 2)) as items_total,
        cast(coalesce(lines.item_count, 0) as integer) as item_count,
        coalesce(lines.items_total, 0) <> transactions.total_amount as is_total_mismatch,
        cast(transactions.loaded_at as timestamptz) as loaded_at,
        cast(
            {{ basket_item_count('transactions.basket') }} - coalesce(lines.item_count, 0)
            as integer
        ) as unreadable_item_count,
        cast(build_files.rows_revised_at_utc as timestamptz) as rows_revised_at_utc
    from transactions
    inner join build_files
        on transactions.source_key = build_files.source_key
    left join lines
        on transactions.transaction_id = lines.transaction_id

)

select * from final
