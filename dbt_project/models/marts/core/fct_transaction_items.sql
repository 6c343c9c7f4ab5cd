-- One row per product line of a transaction (repeats of a product summed into quantity).
{{ config(
    materialized='incremental',
    incremental_strategy='replace_files',
    unique_key='source_key',
    on_schema_change='fail',
    post_hook=["{{ delete_superseded_file_rows() }}", "{{ analyze_for_planner(when_unknown=true) }}"],
    indexes=[
        {'columns': ['source_key', 'file_checksum']},
        {'columns': ['transaction_id']},
    ] if target.type == 'postgres' else none,
    dist='transaction_id' if target.type == 'redshift' else none,
    sort=['source_key'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_build_files') }}
-- depends_on: {{ ref('stg_till__loaded_files') }}

with

lines as (

    select * from {{ ref('int_transaction_lines') }}
    {% if is_incremental() -%}
        where {{ in_list('source_key', files_to_rebuild()) }}
    {%- endif %}

),

final as (

    select
        cast(lines.transaction_item_id as varchar(32)) as transaction_item_id,
        cast(lines.transaction_id as varchar(32)) as transaction_id,
        cast(lines.product_key as varchar(32)) as product_key,
        cast(lines.quantity as integer) as quantity,
        cast(lines.unit_price as numeric(12, 2)) as unit_price,
        cast(lines.line_amount as numeric(12, 2)) as line_amount,
        cast(lines.source_key as varchar(1024)) as source_key,
        cast(lines.file_checksum as varchar(64)) as file_checksum,
        cast(lines.loaded_at as timestamptz) as loaded_at
    from lines

)

select * from final
