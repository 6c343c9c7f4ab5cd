"""The privacy lifecycle of the warehouse's card holders (docs/privacy.md): erasure
(`erasure.forget_card`), access requests (`access.subject_access`), name retention
(`retention.apply_retention`) and card-key rotation (`rotation`), each recorded in
`raw.privacy_audit` (`audit`). Every operation runs the same statements on PostgreSQL and
on Redshift (through the Data API), through a `store.SqlStore`.
"""
