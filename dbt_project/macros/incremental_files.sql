{#
    Incremental models rebuild whole files (unique_key = source_key, delete+insert), and
    take their file list from `int_build_files`, the ledger read once at the start of the
    build: a load that commits while the build runs is in every model or in none.

    `files_to_rebuild()` lists the keys of the snapshot whose file version is not yet in
    the target: candidates are those that finished loading after the newest `loaded_at`
    the target holds (minus a look-back, a margin for the writer's clock); a candidate
    whose (key, checksum) is already built is skipped, so a re-run changes nothing.

    `files_to_rebuild(customers=true)`, for a model that holds `customer_key`, adds the
    files whose customers changed after they were built (`files_with_changed_customers`).
#}
{% macro files_to_rebuild(customers=false) -%}
    select build_files.source_key
    from {{ ref('int_build_files') }} as build_files
    where
        (
            build_files.finished_at_utc >= (
                select
                    {{ dbt.dateadd(
                        'hour',
                        -1 * var('incremental_lookback_hours'),
                        "coalesce(max(built.loaded_at), cast('1900-01-01' as timestamptz))"
                    ) }}
                from {{ this }} as built
            )
            and not exists (
                select 1
                from {{ this }} as built
                where
                    built.source_key = build_files.source_key
                    and built.file_checksum = build_files.file_checksum
            )
        )
        {%- if customers %}
            or build_files.source_key in ({{ files_with_changed_customers() }})
        {%- endif %}
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
    post_hook: drop the rows of a file version that is not in the build's snapshot any more
    (replaced by a re-export, or gone from the ledger). A replacement's new rows arrive
    through delete+insert; this catches the keys whose new version has no rows at all.
#}
{% macro delete_superseded_file_rows() -%}
    delete from {{ this }}
    where not exists (
        select 1
        from {{ ref('int_build_files') }} as build_files
        where
            build_files.source_key = {{ adapter.quote(this.identifier) }}.source_key
            and build_files.file_checksum = {{ adapter.quote(this.identifier) }}.file_checksum
    )
{%- endmacro %}
