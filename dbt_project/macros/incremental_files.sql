{#
    Incremental models rebuild whole files (unique_key = source_key, delete+insert), and
    take their file list from `int_build_files`, the ledger read once at the start of the
    build: a load that commits while the build runs is in every model or in none.

    `files_to_rebuild()` lists the keys of the snapshot whose file version is not yet in
    the target: candidates are those that finished loading after the newest `loaded_at`
    the target holds (minus a look-back, a margin for the writer's clock); a candidate
    whose (key, checksum) is already built is skipped, so a re-run changes nothing.
#}
{% macro files_to_rebuild() -%}
    select build_files.source_key
    from {{ ref('int_build_files') }} as build_files
    where
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
