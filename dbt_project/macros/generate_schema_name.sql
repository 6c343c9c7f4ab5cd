{#
    Where each model lands. The shared targets (var `shared_schema_targets`: `local`, the
    embedded stack, and `prod`, Redshift) use the custom schema verbatim (`staging`,
    `intermediate`, `marts`, `reporting`): the dashboards, the reporting role's grants and
    the docs name these schemas. Every other target (`dev`, `ci`, any target a person
    adds) prefixes its own schema, dbt's default (`dbt_ann_marts`, `ci_1234_marts`), so a
    personal or CI build can never write what Grafana and the scheduled build use.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif is_shared_target() -%}
        {{ custom_schema_name | trim }}
    {%- else -%}
        {{ target.schema }}_{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}


{# True for the targets that own the fixed schema names. #}
{% macro is_shared_target() -%}
    {{ return(target.name in var('shared_schema_targets')) }}
{%- endmacro %}


{# The schema a custom schema name resolves to in the current target (`reporting` → ...). #}
{% macro schema_for(custom_schema_name) -%}
    {{ return(generate_schema_name(custom_schema_name, none) | trim) }}
{%- endmacro %}
