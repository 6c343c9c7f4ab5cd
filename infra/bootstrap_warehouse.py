"""Prepare a fresh Redshift Serverless database for cafe-elt; safe to run again.

    python infra/bootstrap_warehouse.py --workgroup W --database D --admin-secret-arn A \
        --copy-role-arn R --dbt-secret-arn S1 --reporting-secret-arn S2 [--region X]

infra/deploy.sh runs it after the warehouse stack, through the Redshift Data API as the
admin user (whose password CloudFormation generated into Secrets Manager). It creates:

- the loader's tables in schema "raw" (`loader.schema.REDSHIFT_DDL`, every one `if not
  exists`): the loader writes rows but owns no DDL;
- the database role `cafe_loader` (read/write on the raw tables, and COPY through the
  COPY role only). Redshift Serverless grants it to the loader Lambda's IAM role, which
  carries the principal tag `RedshiftDbRoles=cafe_loader`;
- the user `cafe_dbt` (reads raw, creates its own schemas) that the scheduled dbt build
  logs in as, and the read-only `cafe_reporting` user Grafana queries as. Their passwords
  come from their secrets and are sent as md5 hashes, never in clear SQL. Which marts
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

from loader.schema import REDSHIFT_DDL

LOADER_ROLE = "cafe_loader"
DBT_USER = "cafe_dbt"
REPORTING_USER = "cafe_reporting"
RAW_TABLES = ('"raw".transactions', '"raw".loaded_files', '"raw".rejected_rows')


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


def bootstrap_statements(
    *,
    database: str,
    copy_role_arn: str,
    dbt: Credentials,
    reporting: Credentials,
    existing_roles: frozenset[str],
    existing_users: frozenset[str],
) -> list[str]:
    """Every statement of the bootstrap, in order, given what already exists."""
    statements = list(REDSHIFT_DDL)
    if LOADER_ROLE not in existing_roles:
        statements.append(f"create role {LOADER_ROLE}")
    tables = ", ".join(RAW_TABLES)
    statements += [
        f'grant usage on schema "raw" to role {LOADER_ROLE}',
        f"grant select, insert, update, delete on {tables} to role {LOADER_ROLE}",
        f"grant assumerole on {quote_literal(copy_role_arn)} to role {LOADER_ROLE} for copy",
        user_statement(dbt, dbt.username in existing_users),
        f'grant usage on schema "raw" to {dbt.username}',
        f"grant select on {tables} to {dbt.username}",
        f"grant create on database {database} to {dbt.username}",
        user_statement(reporting, reporting.username in existing_users),
    ]
    return statements


class DataApi:
    """Runs statements one at a time through the Data API and waits for each."""

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
        statement_id = str(self.client.execute_statement(Sql=sql, **self.target)["Id"])
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


def bootstrap(api: DataApi, *, database: str, copy_role_arn: str, secrets: Any, args: Any) -> int:
    dbt = read_credentials(secrets, args.dbt_secret_arn)
    reporting = read_credentials(secrets, args.reporting_secret_arn)
    roles = api.names(f"select role_name from svv_roles where role_name = '{LOADER_ROLE}'")
    users = api.names(
        f"select usename from pg_user where usename in ('{DBT_USER}', '{REPORTING_USER}')"
    )
    statements = bootstrap_statements(
        database=database,
        copy_role_arn=copy_role_arn,
        dbt=dbt,
        reporting=reporting,
        existing_roles=roles,
        existing_users=users,
    )
    for number, sql in enumerate(statements, start=1):
        try:
            api.run(sql)
        except BootstrapError as error:
            raise BootstrapError(f"statement {number} of {len(statements)}: {error}") from None
    return len(statements)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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

    import boto3

    session = boto3.session.Session(region_name=args.region)
    api = DataApi(
        session.client("redshift-data"),
        workgroup=args.workgroup,
        database=args.database,
        secret_arn=args.admin_secret_arn,
    )
    try:
        count = bootstrap(
            api,
            database=args.database,
            copy_role_arn=args.copy_role_arn,
            secrets=session.client("secretsmanager"),
            args=args,
        )
    except BootstrapError as error:
        print(f"bootstrap: {error}", file=sys.stderr)
        return 1
    print(f"bootstrap: {count} statements applied to {args.workgroup}/{args.database}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
