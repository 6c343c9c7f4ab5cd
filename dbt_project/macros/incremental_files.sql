{#
    Incremental facts rebuild whole files (unique_key = source_key, delete+insert).

    `files_to_rebuild()` lists the keys whose current file version is not yet in the
    target: candidates are current ledger rows that finished loading after the newest
    `loaded_at` the target holds (minus a look-back that covers a load which committed
    while the previous build ran); a candidate whose (key, checksum) is already built is
    skipped, so a re-run changes nothing.
#}
{% macro files_to_rebuild() -%}
    select ledger.source_key
    from {{ ref('stg_till__loaded_files') }} as ledger
    where
        ledger.is_current
        and ledger.finished_at_utc >= (
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
                built.source_key = ledger.source_key
                and built.file_checksum = ledger.file_checksum
        )
{%- endmacro %}

{#
    post_hook: drop the rows of a file version that is no longer current (replaced by a
    re-export, or no longer in the ledger). A replacement's new rows arrive through
    delete+insert; this catches the keys whose new version contributed no rows at all.
#}
{% macro delete_superseded_file_rows() -%}
    delete from {{ this }}
    where not exists (
        select 1
        from {{ ref('stg_till__loaded_files') }} as ledger
        where
            ledger.is_current
            and ledger.source_key = {{ adapter.quote(this.identifier) }}.source_key
            and ledger.file_checksum = {{ adapter.quote(this.identifier) }}.file_checksum
    )
{%- endmacro %}
