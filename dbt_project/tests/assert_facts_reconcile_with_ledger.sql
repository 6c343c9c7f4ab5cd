-- Reconciliation contract: every line the loader accepted (current file versions) is one
-- transaction in the fact, no more, no less. Returns a row when they differ.
with

ledger as (

    select coalesce(sum(rows_loaded), 0) as rows_loaded
    from {{ ref('stg_till__loaded_files') }}
    where is_current

),

facts as (

    select count(*) as transactions
    from {{ ref('fct_transactions') }}

)

select
    ledger.rows_loaded,
    facts.transactions
from ledger
cross join facts
where ledger.rows_loaded <> facts.transactions
