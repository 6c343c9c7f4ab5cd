{#
    Grafana's read-only role (var `reporting_role`) gets SELECT on each reporting mart (a
    post-hook) and USAGE on the reporting schema (on-run-end). Var `grant_reporting_role`:
    `auto` grants only where the role exists, so a scratch warehouse without Grafana builds;
    `always` grants unconditionally (a missing role is then an error); `never` skips.
#}
{% macro grant_reporting_select() -%}
    {{ return(adapter.dispatch('grant_reporting_select', 'cafe_elt')()) }}
{%- endmacro %}

{% macro grant_reporting_schema_usage() -%}
    {{ return(adapter.dispatch('grant_reporting_schema_usage', 'cafe_elt')()) }}
{%- endmacro %}


{# The one check of the var's value, shared by both grants. #}
{% macro reporting_grant_mode() -%}
    {%- set mode = var('grant_reporting_role') | string | lower -%}
    {%- if mode not in ('auto', 'always', 'never') -%}
        {{ exceptions.raise_compiler_error(
            "var grant_reporting_role must be auto, always or never, not '" ~ mode ~ "'"
        ) }}
    {%- endif -%}
    {{ return(mode) }}
{%- endmacro %}


{#
    PostgreSQL: the checks run inside the statement (an anonymous block), so nothing is
    queried while compiling. `always` drops the role check, never the schema check: a
    build that created no reporting schema has nothing to grant on.
#}
{% macro default__grant_when(statement, schema_must_exist=none) -%}
    {%- set mode = reporting_grant_mode() -%}
    {%- set checks = [] -%}
    {%- if mode == 'auto' -%}
        {%- do checks.append("exists (select 1 from pg_roles where rolname = '" ~ var('reporting_role') ~ "')") -%}
    {%- endif -%}
    {%- if schema_must_exist is not none -%}
        {%- do checks.append("exists (select 1 from pg_namespace where nspname = '" ~ schema_must_exist ~ "')") -%}
    {%- endif -%}
    {%- if mode == 'never' -%}
        select 1
    {%- elif checks | length == 0 -%}
        {{ statement }}
    {%- else -%}
        do $grant$
        begin
            if {{ checks | join(' and ') }} then
                execute '{{ statement | replace("'", "''") }}';
            end if;
        end
        $grant$
    {%- endif -%}
{%- endmacro %}

{% macro default__grant_reporting_select() -%}
    {{ default__grant_when(
        'grant select on ' ~ this ~ ' to ' ~ adapter.quote(var('reporting_role'))
    ) }}
{%- endmacro %}

{% macro default__grant_reporting_schema_usage() -%}
    {%- set schema = schema_for('reporting') -%}
    {{ default__grant_when(
        'grant usage on schema ' ~ adapter.quote(schema) ~ ' to ' ~ adapter.quote(var('reporting_role')),
        schema_must_exist=schema
    ) }}
{%- endmacro %}


{#
    Redshift: no anonymous code blocks, so `auto` looks the grantee up when the hook runs:
    a database user (how infra/bootstrap_warehouse.py creates `cafe_reporting`) or a role.
    Two separate catalogue queries: Redshift refuses a query that mixes leader-node
    catalogues.
#}
{% macro redshift__reporting_grantee() -%}
    {%- set name = var('reporting_role') -%}
    {%- set mode = reporting_grant_mode() -%}
    {%- if mode == 'never' or not execute -%}
        {{ return(none) }}
    {%- elif mode == 'always' -%}
        {{ return(adapter.quote(name)) }}
    {%- endif -%}
    {%- if run_query("select 1 from pg_user where usename = '" ~ name ~ "'").rows | length > 0 -%}
        {{ return(adapter.quote(name)) }}
    {%- elif run_query("select 1 from svv_roles where role_name = '" ~ name ~ "'").rows | length > 0 -%}
        {{ return('role ' ~ adapter.quote(name)) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{% macro redshift__grant_reporting_select() -%}
    {%- set grantee = redshift__reporting_grantee() -%}
    {%- if grantee is none -%}
        select 1
    {%- else -%}
        grant select on {{ this }} to {{ grantee }}
    {%- endif -%}
{%- endmacro %}

{% macro redshift__grant_reporting_schema_usage() -%}
    {%- if execute and flags.WHICH in ('run', 'build') -%}
        {%- set schema = schema_for('reporting') -%}
        {%- set grantee = redshift__reporting_grantee() -%}
        {%- if grantee is none or not adapter.check_schema_exists(target.database, schema) -%}
            select 1
        {%- else -%}
            grant usage on schema {{ adapter.quote(schema) }} to {{ grantee }}
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
