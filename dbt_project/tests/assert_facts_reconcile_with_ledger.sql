-- Reconciliation contract: every line the loader accepted (current file versions, as the
-- build's snapshot of the ledger holds them) is one transaction in the fact, no more, no
-- less. Returns a row when they differ. Against the snapshot, not the live ledger: a load
-- that commits while the build runs belongs to the next build.
{{ config(group='core') }}  {# reads the core group's private snapshot models #}
with

build_files as (

    select coalesce(sum(rows_loaded), 0) as rows_loaded
    from {{ ref('int_build_files') }}

),

facts as (

    select count(*) as transactions
    from {{ ref('fct_transactions') }}

)

select
    build_files.rows_loaded,
    facts.transactions
from build_files
cross join facts
where build_files.rows_loaded <> facts.transactions
