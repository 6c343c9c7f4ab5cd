{#
    What the customer marts rebuild after a change (macros/incremental_changes.sql).

    A changed customer's weeks change where their changed rows are (before and after the
    change). Their first visit, which makes them new in one week at one branch and places
    them in a cohort, can move too: it is always either one of their changed rows or
    `first_unchanged`, their first visit among the files that did not change (the same
    before and after). So it may have moved, to or from `first_unchanged`, only when a
    changed row comes first or `first_unchanged` does not exist: such a customer is a
    "mover". For the others the first visit stays where it was.
#}


{#
    True when footprint row `a` (first transaction: till time, file, line) comes before or
    with footprint row `b`.
#}
{% macro comes_first(a, b) -%}
    (
        {{ a }}.first_transacted_at_utc < {{ b }}.first_transacted_at_utc
        or (
            {{ a }}.first_transacted_at_utc = {{ b }}.first_transacted_at_utc
            and (
                {{ a }}.source_key < {{ b }}.source_key
                or (
                    {{ a }}.source_key = {{ b }}.source_key
                    and {{ a }}.first_line_number <= {{ b }}.first_line_number
                )
            )
        )
    )
{%- endmacro %}


{# The changed rows of card customers that have a week (a readable till time). #}
{% macro changed_card_rows() -%}
    select
        changed.customer_key,
        changed.source_key,
        changed.week_start_local,
        changed.branch_name,
        changed.first_transacted_at_utc,
        changed.first_line_number
    from ({{ changed_footprints() }}) as changed
    where changed.customer_key is not null and changed.first_transacted_at_utc is not null
{%- endmacro %}


{#
    Per changed customer with a dated changed row: `first_unchanged` (null when every dated
    file of theirs changed) and whether they are a mover (their first changed row comes
    first, or there is no `first_unchanged`).
#}
{% macro changed_customer_firsts() -%}
    select
        first_changed.customer_key,
        first_unchanged.week_start_local as first_unchanged_week_start_local,
        first_unchanged.branch_name as first_unchanged_branch_name,
        coalesce(
            first_unchanged.customer_key is null
            or {{ comes_first('first_changed', 'first_unchanged') }},
            false
        ) as is_mover
    from (
        select
            changed_rows.*,
            row_number() over (
                partition by changed_rows.customer_key
                order by
                    changed_rows.first_transacted_at_utc,
                    changed_rows.source_key,
                    changed_rows.first_line_number
            ) as visit_number
        from ({{ changed_card_rows() }}) as changed_rows
    ) as first_changed
    left join (
        select
            footprints.customer_key,
            footprints.source_key,
            footprints.week_start_local,
            footprints.branch_name,
            footprints.first_transacted_at_utc,
            footprints.first_line_number,
            row_number() over (
                partition by footprints.customer_key
                order by
                    footprints.first_transacted_at_utc,
                    footprints.source_key,
                    footprints.first_line_number
            ) as visit_number
        from {{ ref('int_file_footprints') }} as footprints
        where
            footprints.is_current
            and footprints.first_transacted_at_utc is not null
            and {{ in_list(
                'footprints.customer_key',
                'select changed.customer_key from (' ~ changed_card_rows() ~ ') as changed'
            ) }}
            and not exists (
                select 1
                from ({{ changed_footprints() }}) as changed
                where changed.source_key = footprints.source_key
            )
    ) as first_unchanged
        on
            first_changed.customer_key = first_unchanged.customer_key
            and first_unchanged.visit_number = 1
    where first_changed.visit_number = 1
{%- endmacro %}


{#
    (week, branch) pairs of rpt_customers_weekly to rebuild: where changed rows are, and a
    mover's `first_unchanged`.
#}
{% macro changed_customer_weeks() -%}
    select changed_rows.week_start_local, changed_rows.branch_name
    from ({{ changed_card_rows() }}) as changed_rows
    union
    select
        firsts.first_unchanged_week_start_local as week_start_local,
        firsts.first_unchanged_branch_name as branch_name
    from ({{ changed_customer_firsts() }}) as firsts
    where firsts.is_mover and firsts.first_unchanged_week_start_local is not null
{%- endmacro %}


{#
    rpt_cohort_retention's rows to rebuild, as (cohort_week_local, week_start_local): a
    whole cohort (week_start_local null) where a mover's first visit may have been or be
    (its size changes with its members), and for the other changed customers the weeks of
    their changed rows in their own (unmoved) cohort.
#}
{% macro changed_cohort_weeks() -%}
    select
        firsts.first_unchanged_week_start_local as cohort_week_local,
        cast(null as date) as week_start_local
    from ({{ changed_customer_firsts() }}) as firsts
    where firsts.is_mover and firsts.first_unchanged_week_start_local is not null
    union
    select
        changed_rows.week_start_local as cohort_week_local,
        cast(null as date) as week_start_local
    from ({{ changed_card_rows() }}) as changed_rows
    inner join ({{ changed_customer_firsts() }}) as firsts
        on changed_rows.customer_key = firsts.customer_key
    where firsts.is_mover
    union
    select
        firsts.first_unchanged_week_start_local as cohort_week_local,
        changed_rows.week_start_local
    from ({{ changed_card_rows() }}) as changed_rows
    inner join ({{ changed_customer_firsts() }}) as firsts
        on changed_rows.customer_key = firsts.customer_key
    where not firsts.is_mover
{%- endmacro %}


{#
    pre_hook of rpt_cohort_retention: on an incremental run, delete its rows that
    `changed_cohort_weeks()` lists (a whole cohort, or one week of a cohort).
#}
{% macro delete_changed_cohort_weeks() -%}
    {%- if is_incremental() -%}
        {%- set target = adapter.quote(this.identifier) -%}
        delete from {{ this }}
        where exists (
            select 1
            from ({{ changed_cohort_weeks() }}) as changed
            where
                changed.cohort_week_local = {{ target }}.cohort_week_local
                and (
                    changed.week_start_local is null
                    or {{ days_between('changed.cohort_week_local', 'changed.week_start_local') }} / 7
                    = {{ target }}.weeks_since_first
                )
        )
    {%- endif -%}
{%- endmacro %}
