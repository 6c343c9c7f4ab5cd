"""Prepare a Redshift Serverless database for cafe-elt and migrate it; safe to run again.

    python infra/bootstrap_warehouse.py --workgroup W --database D --admin-secret-arn A \
        --copy-role-arn R --dbt-secret-arn S1 --reporting-secret-arn S2 [--region X]

infra/deploy.sh runs it after the warehouse stack and before the loader's trigger is turned
on, through the Redshift Data API as the admin user (whose password CloudFormation
generated into Secrets Manager). In three steps:

1. tables: the loader's tables in schema "raw" (`loader.schema.REDSHIFT_DDL`, every one
   `if not exists`; the loader writes rows but owns no DDL) and the ledger of migrations,
   `"raw".schema_migrations`;
2. migrations: each `(id, sql)` of `loader.schema.REDSHIFT_MIGRATIONS` whose id is not in
   that ledger yet, in order, each in one transaction with its ledger row (the Data API's
   BatchExecuteStatement), so a failed migration leaves no half-applied state and the
   next deploy retries it. A migration that creates a table grants on it itself;
3. access: `revoke assumerole on all from public for all` (otherwise every user may COPY
   with any role the namespace holds, and the grant below restricts nothing); the
   database role `cafe_loader` (read/write on the raw tables, COPY through the COPY role
   only), which Redshift Serverless grants at sign-in to the loader Lambda's IAM role
   (principal tag `RedshiftDbRoles=cafe_loader`); the user `cafe_dbt` that the scheduled
   dbt build logs in as (reads raw, creates its own schemas; its session time zone
   pinned to UTC, because the marts' UTC columns are computed in the session's zone) and
   the read-only `cafe_reporting` user Grafana queries as. Their passwords come from
   their secrets and are sent as md5 hashes, never in clear SQL. Which marts
   `cafe_reporting` may read is the dbt project's `grants` config.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loader.schema import REDSHIFT_DDL, REDSHIFT_MIGRATIONS

LOADER_ROLE = "cafe_loader"
DBT_USER = "cafe_dbt"
REPORTING_USER = "cafe_reporting"
# The loader's tables (the migrations in loader/schema.py create the later ones before step 3
# grants on them). The loader locks loaded_files, which needs a write privilege on it.
# What the loader role writes, table by table:
#   transactions   loads; the retention task clears names; an erasure clears hashes and names
#   loaded_files   the ledger; an erasure marks the files whose rows it changed
#   rejected_rows  loads; retention and erasure mask lines
#   card_keys      key fingerprints on first use; rotation and retirement records
#   card_links     links between two key versions' hashes (overlap window); erasure deletes
#   privacy_audit  append only: the retention task adds its record and reads it back, and
#                  nothing run as the loader may change or delete an audit record
RAW_TABLES = (
    '"raw".transactions',
    '"raw".loaded_files',
    '"raw".rejected_rows',
    '"raw".card_keys',
    '"raw".card_links',
    '"raw".privacy_audit',
)
LOADER_APPEND_ONLY_TABLES = ('"raw".privacy_audit',)
MIGRATIONS_TABLE = '"raw".schema_migrations'
MIGRATIONS_DDL = f"""
    create table if not exists {MIGRATIONS_TABLE} (
        migration_id varchar(128) not null,
        applied_at timestamp not null,
        primary key (migration_id)
    )
    diststyle all
"""

Migration = tuple[str, str]


class BootstrapError(Exception):
    """A statement failed."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def quote_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def md5_password(credentials: Credentials) -> str:
    """Redshift's hashed password form: 'md5' + md5(password + user name)."""
    digest = hashlib.md5(  # noqa: S324 - the format Redshift defines, not our choice
        (credentials.password + credentials.username).encode()
    ).hexdigest()
    return "md5" + digest


def user_statement(credentials: Credentials, exists: bool) -> str:
    verb = "alter" if exists else "create"
    return f"{verb} user {credentials.username} password {quote_literal(md5_password(credentials))}"


def table_statements() -> list[str]:
    """Step 1: the raw tables and the migration ledger, each `if not exists`."""
    return [*REDSHIFT_DDL, MIGRATIONS_DDL]


def pending_migrations(migrations: Sequence[Migration], applied: frozenset[str]) -> list[Migration]:
    """Step 2: the migrations not applied yet, in their declared order.

    Ids must be unique; one applied after a later one was (a pair inserted instead of
    appended) would run out of order, so both are refused before anything runs.
    """
    ids = [migration_id for migration_id, _ in migrations]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise BootstrapError(f"migration ids are not unique: {', '.join(duplicates)}")
    unknown = sorted(applied - set(ids))
    if unknown:
        raise BootstrapError(
            f"the warehouse has migrations this checkout does not know: {', '.join(unknown)}"
            " (deploy from a checkout at least as new as the last deploy)"
        )
    pending = [(i, sql) for i, sql in migrations if i not in applied]
    if pending and applied:
        first_pending = ids.index(pending[0][0])
        late = sorted(i for i in applied if ids.index(i) > first_pending)
        if late:
            raise BootstrapError(
                f"migration {pending[0][0]} comes before the applied {', '.join(late)}:"
                " append new migrations at the end of REDSHIFT_MIGRATIONS"
            )
    return pending


def migration_transaction(migration: Migration) -> list[str]:
    """One migration and its ledger row, to run as one transaction."""
    migration_id, sql = migration
    return [
        sql,
        f"insert into {MIGRATIONS_TABLE} (migration_id, applied_at)"
        f" values ({quote_literal(migration_id)}, getdate())",
    ]


def access_statements(
    *,
    database: str,
    copy_role_arn: str,
    dbt: Credentials,
    reporting: Credentials,
    existing_roles: frozenset[str],
    existing_users: frozenset[str],
) -> list[str]:
    """Step 3: roles, users and grants, given which of them already exist."""
    statements = ["revoke assumerole on all from public for all"]
    if LOADER_ROLE not in existing_roles:
        statements.append(f"create role {LOADER_ROLE}")
    tables = ", ".join(RAW_TABLES)
    written = ", ".join(table for table in RAW_TABLES if table not in LOADER_APPEND_ONLY_TABLES)
    appended = ", ".join(LOADER_APPEND_ONLY_TABLES)
    statements += [
        f'grant usage on schema "raw" to role {LOADER_ROLE}',
        f"grant select, insert, update, delete on {written} to role {LOADER_ROLE}",
        f"grant select, insert on {appended} to role {LOADER_ROLE}",
        f"grant assumerole on {quote_literal(copy_role_arn)} to role {LOADER_ROLE} for copy",
        user_statement(dbt, dbt.username in existing_users),
        f"alter user {dbt.username} set timezone to 'UTC'",
        f'grant usage on schema "raw" to {dbt.username}',
        f"grant select on {tables} to {dbt.username}",
        f"grant create on database {database} to {dbt.username}",
        user_statement(reporting, reporting.username in existing_users),
    ]
    return statements


class DataApi:
    """Runs statements through the Data API, one at a time or one transaction, and waits."""

    def __init__(
        self,
        client: Any,
        *,
        workgroup: str,
        database: str,
        secret_arn: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.target = {"WorkgroupName": workgroup, "Database": database, "SecretArn": secret_arn}
        self.sleep = sleep

    def run(self, sql: str) -> str:
        return self._wait(str(self.client.execute_statement(Sql=sql, **self.target)["Id"]))

    def run_transaction(self, statements: Sequence[str]) -> str:
        """All of `statements` or none of them (BatchExecuteStatement is one transaction)."""
        batch = self.client.batch_execute_statement(Sqls=list(statements), **self.target)
        return self._wait(str(batch["Id"]))

    def _wait(self, statement_id: str) -> str:
        while True:
            described = self.client.describe_statement(Id=statement_id)
            if described["Status"] == "FINISHED":
                return statement_id
            if described["Status"] in ("FAILED", "ABORTED"):
                # The error names the statement's position, not its text: it may hold a hash.
                raise BootstrapError(described.get("Error", "statement failed"))
            self.sleep(0.5)

    def names(self, sql: str) -> frozenset[str]:
        """The first column of a query's rows."""
        result = self.client.get_statement_result(Id=self.run(sql))
        return frozenset(str(row[0]["stringValue"]) for row in result.get("Records", []))


def read_credentials(secrets: Any, arn: str) -> Credentials:
    document = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
    return Credentials(str(document["username"]), str(document["password"]))


@dataclass(frozen=True)
class Summary:
    statements: int
    migrations_applied: tuple[str, ...]


def _run_each(api: DataApi, step: str, statements: Sequence[str]) -> None:
    for number, sql in enumerate(statements, start=1):
        try:
            api.run(sql)
        except BootstrapError as error:
            raise BootstrapError(
                f"{step}: statement {number} of {len(statements)}: {error}"
            ) from None


def bootstrap(
    api: DataApi,
    *,
    database: str,
    copy_role_arn: str,
    secrets: Any,
    args: Any,
    migrations: Sequence[Migration] = REDSHIFT_MIGRATIONS,
) -> Summary:
    dbt = read_credentials(secrets, args.dbt_secret_arn)
    reporting = read_credentials(secrets, args.reporting_secret_arn)

    tables = table_statements()
    _run_each(api, "tables", tables)

    applied = api.names(f"select migration_id from {MIGRATIONS_TABLE}")
    pending = pending_migrations(migrations, applied)
    for migration in pending:
        try:
            api.run_transaction(migration_transaction(migration))
        except BootstrapError as error:
            raise BootstrapError(
                f"migration {migration[0]} failed and was rolled back: {error}"
            ) from None

    roles = api.names(f"select role_name from svv_roles where role_name = '{LOADER_ROLE}'")
    users = api.names(
        f"select usename from pg_user where usename in ('{DBT_USER}', '{REPORTING_USER}')"
    )
    access = access_statements(
        database=database,
        copy_role_arn=copy_role_arn,
        dbt=dbt,
        reporting=reporting,
        existing_roles=roles,
        existing_users=users,
    )
    _run_each(api, "access", access)
    return Summary(
        statements=len(tables) + len(access),
        migrations_applied=tuple(migration_id for migration_id, _ in pending),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    for name in (
        "workgroup",
        "database",
        "admin-secret-arn",
        "copy-role-arn",
        "dbt-secret-arn",
        "reporting-secret-arn",
    ):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--region")
    args = parser.parse_args(argv)

    import boto3  # the deploy venv has it; importing it here keeps --help instant

    session = boto3.session.Session(region_name=args.region)
    api = DataApi(
        session.client("redshift-data"),
        workgroup=args.workgroup,
        database=args.database,
        secret_arn=args.admin_secret_arn,
    )
    try:
        summary = bootstrap(
            api,
            database=args.database,
            copy_role_arn=args.copy_role_arn,
            secrets=session.client("secretsmanager"),
            args=args,
        )
    except BootstrapError as error:
        print(f"bootstrap: {error}", file=sys.stderr)
        return 1
    applied = ", ".join(summary.migrations_applied) or "none pending"
    print(
        f"bootstrap: {summary.statements} statements applied to"
        f" {args.workgroup}/{args.database}; migrations: {applied}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
