"""infra/bootstrap_warehouse.py: the SQL it sends, and how it drives the Data API."""

from __future__ import annotations

import hashlib
from types import ModuleType
from typing import Any

import pytest
from infra_helpers import bootstrap_module


@pytest.fixture(scope="module")
def bootstrap() -> ModuleType:
    return bootstrap_module()


COPY_ROLE = "arn:aws:iam::123456789012:role/cafe-elt-redshift-copy"


def statements(bootstrap: ModuleType, roles: set[str], users: set[str]) -> list[str]:
    result: list[str] = bootstrap.bootstrap_statements(
        database="cafe",
        copy_role_arn=COPY_ROLE,
        dbt=bootstrap.Credentials("cafe_dbt", "Dbt-pass1"),
        reporting=bootstrap.Credentials("cafe_reporting", "Rep'pass2"),
        existing_roles=frozenset(roles),
        existing_users=frozenset(users),
    )
    return result


def test_fresh_database_gets_tables_role_and_users(bootstrap: ModuleType) -> None:
    sql = statements(bootstrap, set(), set())
    from loader.schema import REDSHIFT_DDL

    assert sql[: len(REDSHIFT_DDL)] == list(REDSHIFT_DDL)
    assert "create role cafe_loader" in sql
    assert f"grant assumerole on '{COPY_ROLE}' to role cafe_loader for copy" in sql
    assert any(s.startswith("create user cafe_dbt password 'md5") for s in sql)
    assert any(s.startswith("create user cafe_reporting password 'md5") for s in sql)
    # The reporting user gets no grant here: dbt grants it the reporting marts only.
    assert not any("to cafe_reporting" in s for s in sql)


def test_passwords_never_appear_in_clear(bootstrap: ModuleType) -> None:
    text = "\n".join(statements(bootstrap, set(), set()))
    assert "Dbt-pass1" not in text and "Rep'pass2" not in text
    expected = "md5" + hashlib.md5(b"Dbt-pass1cafe_dbt").hexdigest()  # noqa: S324
    assert f"'{expected}'" in text


def test_a_second_run_alters_instead_of_creating(bootstrap: ModuleType) -> None:
    sql = statements(bootstrap, {"cafe_loader"}, {"cafe_dbt", "cafe_reporting"})
    assert not any(s.startswith(("create role", "create user")) for s in sql)
    assert sum(s.startswith("alter user") for s in sql) == 2


class FakeDataApi:
    """Records statements; fails the one containing `fail_on`."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.sql: list[str] = []
        self.kwargs: list[dict[str, Any]] = []
        self.fail_on = fail_on

    def execute_statement(self, **kwargs: Any) -> dict[str, str]:
        self.kwargs.append(kwargs)
        self.sql.append(kwargs["Sql"])
        return {"Id": str(len(self.sql))}

    def describe_statement(self, Id: str) -> dict[str, str]:
        sql = self.sql[int(Id) - 1]
        if self.fail_on and self.fail_on in sql:
            return {"Status": "FAILED", "Error": "permission denied"}
        return {"Status": "FINISHED"}

    def get_statement_result(self, Id: str) -> dict[str, Any]:
        if "svv_roles" in self.sql[int(Id) - 1]:
            return {"Records": [[{"stringValue": "cafe_loader"}]]}
        return {"Records": []}


class FakeSecrets:
    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        user = SecretId.rsplit("/", 1)[-1]
        return {"SecretString": f'{{"username": "{user}", "password": "P4ss-{user}"}}'}


class Args:
    dbt_secret_arn = "arn:secret/cafe_dbt"
    reporting_secret_arn = "arn:secret/cafe_reporting"


def test_runs_every_statement_as_the_admin_secret_on_the_workgroup(bootstrap: ModuleType) -> None:
    client = FakeDataApi()
    api = bootstrap.DataApi(
        client, workgroup="wg", database="cafe", secret_arn="arn:admin", sleep=lambda _: None
    )
    count = bootstrap.bootstrap(
        api, database="cafe", copy_role_arn=COPY_ROLE, secrets=FakeSecrets(), args=Args()
    )
    assert count == len(client.sql) - 2  # the two existence queries come first
    assert {(k["WorkgroupName"], k["Database"], k["SecretArn"]) for k in client.kwargs} == {
        ("wg", "cafe", "arn:admin")
    }
    assert "create role cafe_loader" not in client.sql  # the fake says it exists


def test_a_failed_statement_stops_with_its_position(bootstrap: ModuleType) -> None:
    api = bootstrap.DataApi(
        FakeDataApi(fail_on="assumerole"),
        workgroup="wg",
        database="cafe",
        secret_arn="arn:admin",
        sleep=lambda _: None,
    )
    with pytest.raises(bootstrap.BootstrapError, match=r"statement \d+ of \d+: permission denied"):
        bootstrap.bootstrap(
            api, database="cafe", copy_role_arn=COPY_ROLE, secrets=FakeSecrets(), args=Args()
        )
