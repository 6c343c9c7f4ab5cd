{#
    One row per file version × café-local day × branch × customer (null: cash, an erased
    card): what the version's rows add up to there. The compact record the customer models,
    the branch and date dimensions read instead of every transaction, and the memory of
    what a version touched once it is gone from raw: a version that leaves the build's
    snapshot is kept, superseded, until a build completes (macros/incremental_changes.sql).

    A key's footprint is added again when its version in the snapshot is not the one here
    (a new file, a re-export, an erasure's revision), when its customers are no longer
    customers (a key rotation's link made a hash part of an older customer), or when the key
    left the snapshot; its rows here are then superseded. `first_*` is the key's first
    transaction in the group (till time, then line): the candidates for a customer's first
    visit.

    The index on (source_key, load_id, added_at_utc) answers new_files()'s "has a complete
    build taken in this version?" with one probe per ledger row: the incremental builds'
    tests ask it about a dozen times, and each scan of every footprint took 0.1 s at 10
    branches x 181 days.
#}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_files',
    unique_key='source_key',
    on_schema_change='fail',
    post_hook="{{ analyze_for_planner(when_unknown=true) }}",
    indexes=[
        {'columns': ['source_key', 'load_id', 'added_at_utc']},
        {'columns': ['customer_key']},
        {'columns': ['changed_at_utc']},
        {'columns': ['superseded_at_utc']},
    ] if target.type == 'postgres' else none,
    dist='customer_key' if target.type == 'redshift' else none,
    sort=['changed_at_utc'] if target.type == 'redshift' else none,
) }}
-- depends_on: {{ ref('int_customer_identities') }}
-- depends_on: {{ ref('stg_till__loaded_files') }}

with

build_files as (

    select
        source_key,
        load_id,
        rows_revised_at_utc,
        snapshot_taken_at_utc
    from {{ ref('int_build_files') }}

),

{% if is_incremental() -%}
    changed_keys as {{ materialized_cte() }} (

        -- A version of the snapshot whose footprint here is another one (or none).
        select build_files.source_key
        from build_files
        where
            not exists (
                select 1
                from {{ this }} as built
                where
                    built.source_key = build_files.source_key
                    and built.is_current
                    and built.load_id = build_files.load_id
                    and coalesce(built.rows_revised_at_utc, cast('1900-01-01' as timestamptz))
                    = coalesce(build_files.rows_revised_at_utc, cast('1900-01-01' as timestamptz))
            )

        union

        -- Customers a key rotation's link made part of an older customer.
        select built.source_key
        from {{ this }} as built
        inner join {{ ref('int_customer_identities') }} as identities
            on built.customer_key = identities.card_hash
        where built.is_current

        union

        -- Keys in the ledger without a version in the snapshot.
        select loads.source_key
        from {{ ref('stg_till__loaded_files') }} as loads
        where not exists (
            select 1
            from build_files
            where build_files.source_key = loads.source_key
        )

    ),

    latest_snapshot as (

        select max(snapshot_taken_at_utc) as snapshot_taken_at_utc
        from build_files

    ),

    superseded as (

        -- The key's rows here, current ones superseded by this build; rows superseded before
        -- the last complete build are every model's history already, and go.
        select
            built.footprint_id,
            built.source_key,
            built.load_id,
            built.rows_revised_at_utc,
            built.sales_date_local,
            built.week_start_local,
            built.branch_name,
            built.customer_key,
            built.transactions,
            built.first_transacted_at_utc,
            built.first_line_number,
            built.last_transacted_at_utc,
            built.added_at_utc,
            coalesce(built.superseded_at_utc, latest_snapshot.snapshot_taken_at_utc) as superseded_at_utc
        from {{ this }} as built
        cross join latest_snapshot
        where
            {{ in_list('built.source_key', 'select changed_keys.source_key from changed_keys') }}
            and coalesce(built.superseded_at_utc, latest_snapshot.snapshot_taken_at_utc)
            > {{ last_complete_build_at() }}

    ),
{%- endif %}

transactions as (

    select
        transactions.source_key,
        transactions.line_number,
        transactions.transacted_at_utc,
        cast(transactions.transacted_at_local as date) as sales_date_local,
        transactions.branch_name,
        transactions.customer_key,
        build_files.load_id,
        build_files.rows_revised_at_utc,
        build_files.snapshot_taken_at_utc
    from {{ ref('int_build_transactions') }} as transactions
    inner join build_files
        on transactions.source_key = build_files.source_key
    {% if is_incremental() -%}
        where {{ in_list('transactions.source_key', 'select changed_keys.source_key from changed_keys') }}
    {%- endif %}

),

ranked as (

    select
        *,
        row_number() over (
            partition by source_key, sales_date_local, branch_name, customer_key
            order by transacted_at_utc, line_number
        ) as rank_in_group
    from transactions

),

added as (

    select
        {{ dbt.hash(dbt.concat([
            'source_key', "'|'", 'load_id', "'|'",
            "coalesce(cast(rows_revised_at_utc as varchar(40)), '')", "'|'",
            'cast(max(snapshot_taken_at_utc) as varchar(40))', "'|'",
            "coalesce(cast(sales_date_local as varchar(10)), '')", "'|'",
            "coalesce(branch_name, '')", "'|'", "coalesce(customer_key, '')",
        ])) }} as footprint_id,
        source_key,
        load_id,
        rows_revised_at_utc,
        sales_date_local,
        {{ week_start('sales_date_local') }} as week_start_local,
        branch_name,
        customer_key,
        count(*) as transactions,
        min(transacted_at_utc) as first_transacted_at_utc,
        min(case when rank_in_group = 1 then line_number end) as first_line_number,
        max(transacted_at_utc) as last_transacted_at_utc,
        max(snapshot_taken_at_utc) as added_at_utc,
        cast(null as timestamptz) as superseded_at_utc
    from ranked
    group by source_key, load_id, rows_revised_at_utc, sales_date_local, branch_name, customer_key

),

footprints as (

    select * from added
    {% if is_incremental() -%}
        union all
        select * from superseded
    {%- endif %}

),

final as (

    select
        cast(footprint_id as varchar(32)) as footprint_id,
        cast(source_key as varchar(1024)) as source_key,
        cast(load_id as varchar(36)) as load_id,
        cast(rows_revised_at_utc as timestamptz) as rows_revised_at_utc,
        cast(sales_date_local as date) as sales_date_local,
        cast(week_start_local as date) as week_start_local,
        cast(branch_name as varchar(256)) as branch_name,
        cast(customer_key as varchar(64)) as customer_key,
        cast(transactions as integer) as transactions,
        cast(first_transacted_at_utc as timestamptz) as first_transacted_at_utc,
        cast(first_line_number as integer) as first_line_number,
        cast(last_transacted_at_utc as timestamptz) as last_transacted_at_utc,
        cast(added_at_utc as timestamptz) as added_at_utc,
        cast(superseded_at_utc as timestamptz) as superseded_at_utc,
        cast(coalesce(superseded_at_utc, added_at_utc) as timestamptz) as changed_at_utc,
        superseded_at_utc is null as is_current
    from footprints

)

select * from final
