{#
    The models that hold one row per transaction or basket line (int_transaction_lines and
    the two facts) rebuild whole files (unique_key = source_key, the `replace_files`
    strategy below) and take
    their file list from `int_build_files`, the ledger read once at the start of the build:
    a load that commits while the build runs is in every model or in none.

    `files_to_rebuild()` lists the keys of the snapshot whose file version the target does
    not hold yet: one probe per file of the snapshot on the target's index on
    (source_key, file_checksum) (`probe_limit()`), so a re-run changes nothing and a build
    costs the new files, not the history.

    `files_to_rebuild(customers=true)`, for a model that holds `customer_key`, adds the
    files whose customers changed after they were built (`files_with_changed_customers`).
#}
{% macro files_to_rebuild(customers=false) -%}
    select build_files.source_key
    from {{ ref('int_build_files') }} as build_files
    where
        not exists (
            select 1
            from {{ this }} as built
            where
                built.source_key = build_files.source_key
                and built.file_checksum = build_files.file_checksum
            {{ probe_limit() }}
        )
        {%- if customers %}
            or build_files.source_key in ({{ files_with_changed_customers() }})
        {%- endif %}
{%- endmacro %}

{#
    `limit 1` in a correlated probe on PostgreSQL: it keeps the planner from turning
    "the files a million-row target lacks" into a hash anti-join over the whole target, so
    each file costs one index lookup. Redshift (no indexes, columnar scans) plans it its
    own way.
#}
{% macro probe_limit() -%}
    {{ return(adapter.dispatch('probe_limit', 'cafe_elt')()) }}
{%- endmacro %}

{% macro default__probe_limit() -%}
    limit 1
{%- endmacro %}

{% macro redshift__probe_limit() -%}
{%- endmacro %}

{#
    Files of an unchanged version whose customers changed after the target built them:
    an erasure (`cafe forget`) cleared card hashes in their rows (the ledger's
    `rows_revised_at`, later than the revision the target built), or a key rotation's link
    made a hash the target holds as a customer part of an older customer
    (`int_customer_identities`). The target keeps the revision it built in
    `rows_revised_at_utc`.
#}
{% macro files_with_changed_customers() -%}
    select revised.source_key
    from {{ ref('int_build_files') }} as revised
    where
        revised.rows_revised_at_utc is not null
        and exists (
            select 1
            from {{ this }} as built
            where
                built.source_key = revised.source_key
                and coalesce(built.rows_revised_at_utc, cast('1900-01-01' as timestamptz))
                < revised.rows_revised_at_utc
        )
    union
    select built.source_key
    from {{ this }} as built
    inner join {{ ref('int_customer_identities') }} as identities
        on built.customer_key = identities.card_hash
{%- endmacro %}

{#
    post_hook: drop the rows of a file version that is not in the build's snapshot any more.
    A replacement's new rows arrive through delete+insert; this catches the keys whose new
    version has no rows at all (still missing from the target after the insert) and the
    keys that left the snapshot (in the ledger without a current version). Both lists are
    short, and each key's rows are found through the target's index on source_key.
#}
{% macro delete_superseded_file_rows() -%}
    {%- set gone_or_empty -%}
        {{ files_to_rebuild() }}
        union
        select loads.source_key
        from {{ ref('stg_till__loaded_files') }} as loads
        where not exists (
            select 1
            from {{ ref('int_build_files') }} as build_files
            where build_files.source_key = loads.source_key
        )
    {%- endset -%}
    delete from {{ this }}
    where
        {{ in_list('source_key', gone_or_empty) }}
        and not exists (
            select 1
            from {{ ref('int_build_files') }} as build_files
            where
                build_files.source_key = {{ adapter.quote(this.identifier) }}.source_key
                and build_files.file_checksum = {{ adapter.quote(this.identifier) }}.file_checksum
        )
{%- endmacro %}


{#
    incremental_strategy='replace_files': dbt's delete+insert on `unique_key`, with the
    delete written so that PostgreSQL finds the rows of the new batch's keys through the
    target's index (`in_list`): dbt's own `in (select distinct ...)` from a temp table the
    planner knows nothing about scans the whole target, a million rows for a few files.
#}
{% macro get_incremental_replace_files_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set batch = arg_dict['temp_relation'] -%}
    {%- set key = arg_dict['unique_key'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }}
    where {{ in_list(key, 'select distinct ' ~ key ~ ' from ' ~ batch) }};

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ batch }}
{%- endmacro %}
