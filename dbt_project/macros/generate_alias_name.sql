{#
    Relation names of versioned models: the latest version keeps the model's plain name
    (`rpt_daily_branch_sales`), which the dashboards read, and every other version is
    `<name>_v<N>`. A breaking change is a new version built beside the current one under
    `_v2`; the dashboards move to it; then `latest_version` moves and the names swap.
#}
{% macro generate_alias_name(custom_alias_name=none, node=none) -%}
    {%- if custom_alias_name -%}
        {{ custom_alias_name | trim }}
    {%- elif node.version and node.version | string != node.latest_version | string -%}
        {{ return(node.name ~ "_v" ~ (node.version | replace(".", "_"))) }}
    {%- else -%}
        {{ node.name }}
    {%- endif -%}
{%- endmacro %}
