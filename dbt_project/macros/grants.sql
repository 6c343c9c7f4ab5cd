{#
    on-run-end: the reporting role may look into the `reporting` schema (table grants come
    from the `+grants` config). Skipped when the role does not exist, e.g. in a scratch
    warehouse, so a build never fails for want of Grafana.
#}
{% macro grant_reporting_schema_usage(role) -%}
    {{ return(adapter.dispatch('grant_reporting_schema_usage', 'cafe_elt')(role)) }}
{%- endmacro %}

{% macro default__grant_reporting_schema_usage(role) -%}
    do $grant$
    begin
        if exists (select 1 from pg_roles where rolname = '{{ role }}')
            and exists (select 1 from pg_namespace where nspname = 'reporting') then
            execute 'grant usage on schema reporting to {{ role }}';
        end if;
    end
    $grant$
{%- endmacro %}

{% macro redshift__grant_reporting_schema_usage(role) -%}
    {%- if execute and flags.WHICH in ('run', 'build') -%}
        {%- set found = run_query(
            "select 1 from pg_user where usename = '" ~ role ~ "'"
            ~ " union all select 1 from svv_roles where role_name = '" ~ role ~ "'"
        ) -%}
        {%- if found.rows | length > 0 -%}
            grant usage on schema reporting to {{ role }}
        {%- else -%}
            select 1
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
