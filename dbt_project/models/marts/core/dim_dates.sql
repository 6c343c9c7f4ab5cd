-- One row per café-local calendar day from the first to the last trading day, whatever
-- the range: the day offsets are numbered in blocks of the numbers spine. The bounds come
-- from the current file footprints (a few rows per file, not every transaction), so the
-- calendar costs the same every build.
{{ config(dist='all' if target.type == 'redshift' else none) }}

with

bounds as (

    select
        min(sales_date_local) as first_day,
        max(sales_date_local) as last_day
    from {{ ref('int_file_footprints') }}
    where is_current

),

span as (

    select
        first_day,
        {{ days_between('first_day', 'last_day') }} as last_offset
    from bounds
    where first_day is not null

),

numbers as (

    select n from {{ ref('int_numbers') }}

),

blocks as (

    select numbers.n as block_number
    from numbers
    inner join span
        on numbers.n <= span.last_offset / {{ numbers_spine_size() }} + 1

),

offsets as (

    select (blocks.block_number - 1) * {{ numbers_spine_size() }} + numbers.n - 1 as day_offset
    from blocks
    cross join numbers

),

days as (

    select cast({{ dbt.dateadd('day', 'offsets.day_offset', 'span.first_day') }} as date) as date_day
    from span
    inner join offsets
        on span.last_offset >= offsets.day_offset

),

described as (

    select
        date_day,
        {{ iso_weekday('date_day') }} as weekday_number
    from days

),

final as (

    select
        cast(date_day as date) as date_day,
        cast({{ local_to_utc('cast(date_day as timestamp)') }} as timestamptz) as day_start_utc,
        {{ week_start('date_day') }} as week_start_local,
        cast({{ dbt.date_trunc('month', 'date_day') }} as date) as month_start_local,
        cast(extract(year from date_day) as integer) as year_number,
        cast(weekday_number as integer) as weekday_number,
        cast(case weekday_number
            when 1 then 'Monday' when 2 then 'Tuesday' when 3 then 'Wednesday'
            when 4 then 'Thursday' when 5 then 'Friday' when 6 then 'Saturday'
            else 'Sunday'
        end as varchar(16)) as weekday_name,
        weekday_number >= 6 as is_weekend
    from described

)

select * from final
