{#
    A custom schema is used verbatim (`staging`, `intermediate`, `marts`, `reporting`)
    instead of dbt's default `<target schema>_<custom>`: the dashboards, the reporting
    role's grants and the docs all name these schemas, whatever the target.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
