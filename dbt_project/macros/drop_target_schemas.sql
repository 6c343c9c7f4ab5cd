{#
    `dbt run-operation drop_target_schemas --target ci`: drops the run's own schemas (the
    target's schema and every `<target schema>_*`), e.g. at the end of a CI run. Refuses on
    the shared targets, whose schemas Grafana and the scheduled build use.
#}
{% macro drop_target_schemas(dry_run=false) -%}
    {%- if is_shared_target() -%}
        {{ exceptions.raise_compiler_error(
            "drop_target_schemas: target '" ~ target.name ~ "' owns the shared schemas; refusing"
        ) }}
    {%- endif -%}
    {%- set prefix = target.schema ~ '_' -%}
    {%- set found = run_query(
        "select schema_name from information_schema.schemata"
        ~ " where schema_name = '" ~ target.schema ~ "'"
        ~ " or left(schema_name, " ~ (prefix | length) ~ ") = '" ~ prefix ~ "'"
        ~ " order by schema_name"
    ) -%}
    {%- for row in found.rows -%}
        {%- do log(("would drop " if dry_run else "dropping ") ~ "schema " ~ row[0], info=true) -%}
        {%- if not dry_run -%}
            {%- do adapter.drop_schema(api.Relation.create(database=target.database, schema=row[0])) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}
