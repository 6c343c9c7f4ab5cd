{#
    on-run-end: one row per node of this invocation into `rpt_build_results` (the table that
    model creates), for Pipeline health: every model's, test's and source freshness check's
    outcome, how many rows a test found and where its stored failures are. Runs after
    `dbt build`, `run`, `test`, `seed` and `source freshness` alike.

    dbt's result messages are never stored: an error message can quote a value of a raw line.
    Before the first build creates the table there is nowhere to write, and nothing is.
#}
{% macro record_run_results(results) -%}
    {%- if not execute or results | length == 0 -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set relation = adapter.get_relation(
        database=target.database, schema=schema_for('reporting'), identifier='rpt_build_results'
    ) -%}
    {%- if relation is none -%}
        {%- do log('record_run_results: no rpt_build_results yet; results not recorded', info=true) -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set rows = [] -%}
    {%- for result in results -%}
        {%- do rows.append(run_result_values(result)) -%}
    {%- endfor -%}
    insert into {{ relation }} (
        invocation_id, command, target_name, run_started_at_utc, recorded_at_utc,
        unique_id, resource_type, node_name, tested_node, check_kind, status, failures,
        failures_relation, max_loaded_at_utc, age_hours, execution_seconds
    )
    values
    {{ rows | join(',\n    ') }}
{%- endmacro %}


{% macro sql_text(value, size) -%}
    {%- if value is none -%}
        cast(null as varchar({{ size }}))
    {%- else -%}
        cast('{{ (value | string)[:size] | replace("'", "''") }}' as varchar({{ size }}))
    {%- endif -%}
{%- endmacro %}

{% macro sql_instant(value) -%}
    {%- if value is none -%}
        cast(null as timestamptz)
    {%- else -%}
        cast('{{ value.strftime("%Y-%m-%d %H:%M:%S.%f") }}+00' as timestamptz)
    {%- endif -%}
{%- endmacro %}

{% macro sql_number(value, type) -%}
    {%- if value is none -%}
        cast(null as {{ type }})
    {%- else -%}
        cast({{ value }} as {{ type }})
    {%- endif -%}
{%- endmacro %}


{#
    A test's kind: `integrity` (error severity: grain, relationships between models,
    reconciliation, privacy, unit tests) stops what depends on it; `data_value` (warn
    severity, failures stored) describes the data and never stops a build.
#}
{% macro run_result_kind(node) -%}
    {%- set resource_type = node.resource_type | string -%}
    {%- if resource_type == 'source' -%}
        {{ return('freshness') }}
    {%- elif resource_type == 'unit_test' -%}
        {{ return('integrity') }}
    {%- elif resource_type == 'test' -%}
        {{ return('data_value' if (node.config.severity | lower) == 'warn' else 'integrity') }}
    {%- endif -%}
    {{ return('build') }}
{%- endmacro %}


{# `model.cafe_elt.rpt_file_loads.v1` → `rpt_file_loads`; `source.cafe_elt.till.transactions` → `till.transactions`. #}
{% macro tested_node_name(unique_id) -%}
    {%- if not unique_id -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set parts = unique_id.split('.') -%}
    {{ return(parts[2] ~ '.' ~ parts[3] if parts[0] == 'source' else parts[2]) }}
{%- endmacro %}


{% macro run_result_values(result) -%}
    {%- set node = result.node -%}
    {%- set resource_type = node.resource_type | string -%}
    {%- set tested = node.attached_node if resource_type == 'test' else none -%}
    {%- set is_freshness = resource_type == 'source' -%}
    {%- set stored = node.relation_name if resource_type == 'test' and node.config.store_failures else none -%}
    (
        {{ sql_text(invocation_id, 64) }},
        {{ sql_text(flags.WHICH, 32) }},
        {{ sql_text(target.name, 64) }},
        {{ sql_instant(run_started_at) }},
        {{ current_timestamp_utc() }},
        {{ sql_text(node.unique_id, 1024) }},
        {{ sql_text(resource_type, 16) }},
        {{ sql_text(node.source_name ~ '.' ~ node.name if is_freshness else node.name, 512) }},
        {{ sql_text(tested_node_name(tested), 512) }},
        {{ sql_text(run_result_kind(node), 16) }},
        {{ sql_text(result.status, 32) }},
        {{ sql_number(result.failures if not is_freshness else none, 'integer') }},
        {{ sql_text(stored, 1024) }},
        {{ sql_instant(result.max_loaded_at if is_freshness else none) }},
        {{ sql_number(((result.age / 3600.0) | round(2)) if is_freshness and result.age is not none else none, 'numeric(12, 2)') }},
        {{ sql_number((result.execution_time | round(3)) if result.execution_time is not none else none, 'numeric(12, 3)') }}
    )
{%- endmacro %}


{# A comma-separated list of quoted texts, one per line (for `in (...)`). #}
{% macro sql_text_list(values) -%}
    {%- for value in values %}
        '{{ value | replace("'", "''") }}'{% if not loop.last %},{% endif %}
    {%- endfor %}
{%- endmacro %}
