{#
    What changed since the last complete build, for the incremental models that aggregate
    across files (dimensions, the customer models, the reporting marts) and for the tests
    that incremental builds filter.

    `int_file_footprints` keeps, per file version, the café-local days, branches and
    customers its rows touch. A version that leaves the build's snapshot (replaced by a
    re-export, revised by an erasure, or whose customers a key rotation's link merged) is
    not deleted there but marked superseded, so that the days and customers its rows used
    to touch are still known. Every footprint row carries `changed_at_utc`, the snapshot
    time of the build that added or superseded it.

    `int_build_changes` holds the footprint rows changed since the last complete build,
    read once per build (a small table the planner knows): the macros below read it.

    `int_completed_builds` records a build once every model that takes in the changes has
    finished (it is their common child, so dbt skips it when any of them failed or was
    skipped). A change is pending from the build that made it until a later build
    completes: each consumer rebuilds the days, weeks and customers of every pending
    change, whatever it did with them in a build that did not complete, so a failed or
    partial build costs work, never correctness.
#}


{#
    The relation a model of this project was built into, or none before its first build.
    Read without ref(): for the previous builds' record (int_completed_builds) a ref() from
    the models it waits for would be a cycle, and a test's where-filter is filled in too
    late for dbt to see a ref() (get_where_subquery below).
#}
{% macro built_relation(model_name) -%}
    {%- set node = graph.nodes.get('model.cafe_elt.' ~ model_name) if execute else none -%}
    {%- if node is none -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias)) }}
{%- endmacro %}


{#
    The snapshot time of the last complete build (the dawn of time before the first one),
    from int_completed_builds: the previous builds' record, like {{ this }} for an
    incremental model.
#}
{% macro last_complete_build_at() -%}
    {%- set relation = built_relation('int_completed_builds') -%}
    {%- if relation is none -%}
        cast('1900-01-01' as timestamptz)
    {%- else -%}
        (
            select coalesce(max(completed.snapshot_taken_at_utc), cast('1900-01-01' as timestamptz))
            from {{ relation }} as completed
        )
    {%- endif -%}
{%- endmacro %}


{#
    `column` is one of the values `subquery` returns. PostgreSQL plans an `in (subquery)`
    by the subquery's estimate, which for "the files a target lacks" (an anti-join) is most
    of the files, and then scans the whole table; an array of the values, computed first,
    reaches the table through its index whatever the estimate. Redshift has no arrays and
    no indexes: a plain `in`.
#}
{% macro in_list(column, subquery) -%}
    {{ return(adapter.dispatch('in_list', 'cafe_elt')(column, subquery)) }}
{%- endmacro %}

{% macro default__in_list(column, subquery) -%}
    {{ column }} = any(array({{ subquery }}))
{%- endmacro %}

{% macro redshift__in_list(column, subquery) -%}
    {{ column }} in ({{ subquery }})
{%- endmacro %}


{#
    post_hooks of int_completed_builds: once a build is complete, the changes it took in
    are every model's history. The superseded footprints go (a forgotten card's hash, which
    they kept until every model had dropped the card, with them) and int_build_changes,
    which holds the changes since the last complete build, is empty. After a build that did
    not complete, the latest complete build is the one before: nothing pending goes.
#}
{% macro forget_changes_taken_in(model_name, column) -%}
    {%- set relation = built_relation(model_name) -%}
    {%- if relation is not none -%}
        delete from {{ relation }}
        where {{ column }} <= (
            select max(completed.snapshot_taken_at_utc) from {{ this }} as completed
        )
    {%- endif -%}
{%- endmacro %}


{#
    True when this build's checks may look only at what changed: a build after a complete
    one, without --full-refresh. The first build and the weekly --full-refresh build check
    every row.
#}
{% macro checks_only_changes() -%}
    {{ return(not flags.FULL_REFRESH and built_relation('int_completed_builds') is not none) }}
{%- endmacro %}


{# Footprint rows added or superseded since the last complete build (int_build_changes). #}
{% macro changed_footprints() -%}
    select * from {{ ref('int_build_changes') }}
{%- endmacro %}


{# Keys of the files whose footprint changed since the last complete build. #}
{% macro changed_files() -%}
    select distinct changed.source_key
    from ({{ changed_footprints() }}) as changed
{%- endmacro %}


{#
    (café-local day, branch) pairs that the changed versions touch, before and after the
    change; `branch_key` is dim_branches' key of the branch.
#}
{% macro changed_sales_days() -%}
    select distinct
        changed.sales_date_local,
        changed.branch_name,
        {{ dbt.hash('changed.branch_name') }} as branch_key
    from ({{ changed_footprints() }}) as changed
    where changed.sales_date_local is not null
{%- endmacro %}


{#
    The where-clause of a reporting mart's read of fct_transactions (alias `alias`) on an
    incremental run: only the (café-local day, branch) pairs that changed versions touch,
    which the mart's pre_hook deleted. Nothing on a full build.
#}
{% macro on_changed_sales_days(alias) -%}
    {%- if is_incremental() -%}
        where exists (
            select 1
            from ({{ changed_sales_days() }}) as changed
            where
                changed.sales_date_local = {{ alias }}.sales_date_local
                and changed.branch_key = {{ alias }}.branch_key
        )
    {%- endif -%}
{%- endmacro %}


{# Branches the changed versions touch, with dim_branches' key. #}
{% macro changed_branches() -%}
    select distinct
        changed.branch_name,
        {{ dbt.hash('changed.branch_name') }} as branch_key
    from ({{ changed_footprints() }}) as changed
{%- endmacro %}


{# Café-local days the changed versions touch at any branch (null: lines without a till time). #}
{% macro changed_price_days() -%}
    select distinct changed.sales_date_local
    from ({{ changed_footprints() }}) as changed
{%- endmacro %}


{# Customers whose rows changed, before and after the change. #}
{% macro changed_customers() -%}
    select distinct changed.customer_key
    from ({{ changed_footprints() }}) as changed
    where changed.customer_key is not null
{%- endmacro %}


{#
    UTC days of rpt_rejection_reasons_daily to count again: the days every attempt of a key
    spans (from its start to its end) when its current version is new (`new_files()`): a
    load writes its refused lines with its own time, and a re-export deletes those of the
    version before it.
#}
{% macro changed_rejection_days() -%}
    select {{ utc_day_start('attempts.started_at_utc') }} as day_utc
    from {{ ref('stg_till__loaded_files') }} as attempts
    where attempts.source_key in ({{ new_files() }})
    union
    select {{ utc_day_start('attempts.finished_at_utc') }} as day_utc
    from {{ ref('stg_till__loaded_files') }} as attempts
    where
        attempts.finished_at_utc is not null
        and attempts.source_key in ({{ new_files() }})
{%- endmacro %}


{#
    Keys whose current version in the ledger no complete build has taken in: no footprint
    of that load was added by the last complete build or before it (a version without any
    row never has one, and always counts as new). Where the transaction-level tests of an
    incremental build look. No clock is compared: the footprints carry the snapshot times
    of the builds. `ledger` and `footprints` are stg_till__loaded_files and
    int_file_footprints unless given.
#}
{% macro new_files(ledger=none, footprints=none) -%}
    select loads.source_key
    from {{ ledger if ledger is not none else ref('stg_till__loaded_files') }} as loads
    where
        loads.is_current
        and not exists (
            select 1
            from {{ footprints if footprints is not none else ref('int_file_footprints') }} as known
            where
                known.source_key = loads.source_key
                and known.load_id = loads.load_id
                and known.added_at_utc <= {{ last_complete_build_at() }}
        )
{%- endmacro %}


{#
    pre_hook of a model that rebuilds groups of rows: on an incremental run, delete the
    rows of the groups `changed_groups_sql` lists (columns `columns`), so that the model's
    rows for them (none for a group that is gone) replace them. Runs in the model's
    transaction: readers never see a group missing. With `null_matches`, a null in a
    group's column matches a null (compared as text, which keeps the join a hash join).
#}
{% macro delete_changed_groups(columns, changed_groups_sql, null_matches=false) -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where exists (
            select 1
            from ({{ changed_groups_sql }}) as changed
            where
                {% for column in columns -%}
                    {%- set target_column = adapter.quote(this.identifier) ~ '.' ~ column -%}
                    {%- if null_matches -%}
                        coalesce(cast(changed.{{ column }} as varchar(64)), '-')
                        = coalesce(cast({{ target_column }} as varchar(64)), '-')
                    {%- else -%}
                        changed.{{ column }} = {{ target_column }}
                    {%- endif -%}
                    {%- if not loop.last %} and {% endif %}
                {% endfor %}
        )
    {%- endif -%}
{%- endmacro %}


{#
    A PostgreSQL post_hook: planner statistics for a table that dbt just built (dbt does not
    analyze, and the autovacuum comes too late for the next model's plan). Every time for
    a small table rebuilt by every build; with `when_unknown`, for a large incremental
    table, only while the planner has no statistics of it (after its first or a full
    build), as the autovacuum keeps them current afterwards. Redshift analyzes on its own.
#}
{% macro analyze_for_planner(when_unknown=false) -%}
    {{ return(adapter.dispatch('analyze_for_planner', 'cafe_elt')(when_unknown)) }}
{%- endmacro %}

{% macro default__analyze_for_planner(when_unknown) -%}
    {%- if when_unknown -%}
        do $analyze$
        begin
            if not exists (
                select 1 from pg_stats
                where schemaname = '{{ this.schema }}' and tablename = '{{ this.identifier }}'
            ) then
                execute 'analyze {{ this | replace("'", "''") }}';
            end if;
        end
        $analyze$
    {%- else -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}

{% macro redshift__analyze_for_planner(when_unknown) -%}
{%- endmacro %}


{#
    dbt's where-filter of a generic test, with placeholders filled in when the test runs
    (a test's `where` is rendered when the project is parsed, too early to know what a
    build changed):

    `<column> in __new_files__`: the keys of `new_files()`;
    `<column> in __changed_customers__`: the customers of `changed_customers()` (for tests
    of models that int_build_changes precedes);
    `__last_complete_build_at__`: `last_complete_build_at()`.

    A `--full-refresh` build (the weekly one) and a build with no complete build before it
    run every filtered test over every row.
#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if not where -%}
        {% do return(relation) %}
    {%- endif -%}
    {%- set placeholders = {
        '__new_files__': ['stg_till__loaded_files', 'int_file_footprints'],
        '__changed_customers__': ['int_build_changes'],
    } -%}
    {%- set needed = {} -%}
    {%- for placeholder, model_names in placeholders.items() if placeholder in where -%}
        {%- for model_name in model_names -%}
            {%- do needed.update({model_name: built_relation(model_name)}) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if not checks_only_changes() or none in needed.values() -%}
        {% do return(relation) %}
    {%- endif -%}
    {%- if '__new_files__' in where -%}
        {%- set files = new_files(
            ledger=needed['stg_till__loaded_files'], footprints=needed['int_file_footprints']
        ) -%}
        {%- set where = filled_in(where, '__new_files__', files) -%}
    {%- endif -%}
    {%- if '__changed_customers__' in where -%}
        {%- set customers -%}
            select distinct changed.customer_key
            from {{ needed['int_build_changes'] }} as changed
            where changed.customer_key is not null
        {%- endset -%}
        {%- set where = filled_in(where, '__changed_customers__', customers) -%}
    {%- endif -%}
    {%- if '__last_complete_build_at__' in where -%}
        {%- set where = where | replace('__last_complete_build_at__', last_complete_build_at()) -%}
    {%- endif -%}
    {%- set filtered -%}
        (select * from {{ relation }} where {{ where }}) as dbt_subquery
    {%- endset -%}
    {% do return(filtered) %}
{%- endmacro %}


{# `where` with every `<column> in <placeholder>` turned into `in_list(<column>, subquery)`. #}
{% macro filled_in(where, placeholder, subquery) -%}
    {%- set state = namespace(where=where) -%}
    {%- for column in modules.re.findall('([A-Za-z_][A-Za-z0-9_.]*)\\s+in\\s+' ~ placeholder, where) -%}
        {%- set state.where = modules.re.sub(
            modules.re.escape(column) ~ '\\s+in\\s+' ~ placeholder,
            in_list(column, subquery),
            state.where,
            count=1
        ) -%}
    {%- endfor -%}
    {{ return(state.where) }}
{%- endmacro %}
