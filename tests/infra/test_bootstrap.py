"""infra/bootstrap_warehouse.py: the SQL it sends, its migrations, how it drives the Data API."""

from __future__ import annotations

import hashlib
import re
from types import ModuleType
from typing import Any

import pytest
import sqlfluff
from infra_helpers import bootstrap_module

from loader.schema import REDSHIFT_DDL, REDSHIFT_MIGRATIONS


@pytest.fixture(scope="module")
def bootstrap() -> ModuleType:
    return bootstrap_module()


COPY_ROLE = "arn:aws:iam::123456789012:role/cafe-elt-redshift-copy"


def access(bootstrap: ModuleType, roles: set[str], users: set[str]) -> list[str]:
    result: list[str] = bootstrap.access_statements(
        database="cafe",
        copy_role_arn=COPY_ROLE,
        dbt=bootstrap.Credentials("cafe_dbt", "Dbt-pass1"),
        reporting=bootstrap.Credentials("cafe_reporting", "Rep'pass2"),
        existing_roles=frozenset(roles),
        existing_users=frozenset(users),
    )
    return result


def test_tables_come_from_the_loader_schema_then_the_migration_ledger(
    bootstrap: ModuleType,
) -> None:
    tables = bootstrap.table_statements()
    assert tables[: len(REDSHIFT_DDL)] == list(REDSHIFT_DDL)
    assert '"raw".schema_migrations' in tables[-1]
    assert all("if not exists" in sql for sql in tables)


def test_fresh_database_gets_role_users_and_grants(bootstrap: ModuleType) -> None:
    sql = access(bootstrap, set(), set())
    assert "create role cafe_loader" in sql
    assert f"grant assumerole on '{COPY_ROLE}' to role cafe_loader for copy" in sql
    assert any(s.startswith("create user cafe_dbt password 'md5") for s in sql)
    assert any(s.startswith("create user cafe_reporting password 'md5") for s in sql)
    # The reporting user gets no grant here: dbt grants it the reporting marts only.
    assert not any("to cafe_reporting" in s for s in sql)


def test_public_loses_assumerole_before_the_copy_role_is_granted(bootstrap: ModuleType) -> None:
    sql = access(bootstrap, set(), set())
    revoke = sql.index("revoke assumerole on all from public for all")
    grant = next(i for i, s in enumerate(sql) if s.startswith("grant assumerole"))
    assert revoke < grant


def test_dbt_sessions_are_pinned_to_utc(bootstrap: ModuleType) -> None:
    for users in (set(), {"cafe_dbt", "cafe_reporting"}):
        sql = access(bootstrap, set(), users)
        assert "alter user cafe_dbt set timezone to 'UTC'" in sql
        created = next(
            i
            for i, s in enumerate(sql)
            if s.startswith(("create user cafe_dbt", "alter user cafe_dbt password"))
        )
        assert sql.index("alter user cafe_dbt set timezone to 'UTC'") > created


def test_passwords_never_appear_in_clear(bootstrap: ModuleType) -> None:
    text = "\n".join(access(bootstrap, set(), set()))
    assert "Dbt-pass1" not in text and "Rep'pass2" not in text
    expected = "md5" + hashlib.md5(b"Dbt-pass1cafe_dbt").hexdigest()  # noqa: S324
    assert f"'{expected}'" in text


def test_a_second_run_alters_instead_of_creating(bootstrap: ModuleType) -> None:
    sql = access(bootstrap, {"cafe_loader"}, {"cafe_dbt", "cafe_reporting"})
    assert not any(s.startswith(("create role", "create user")) for s in sql)
    assert sum(s.startswith("alter user") and " password " in s for s in sql) == 2


def test_what_sqlfluff_knows_parses_as_redshift(bootstrap: ModuleType) -> None:
    statements = [
        *bootstrap.table_statements(),
        *bootstrap.migration_transaction(("0001", 'alter table "raw".x add column y integer')),
        *access(bootstrap, set(), set()),
    ]
    # sqlfluff's dialect has no ASSUMEROLE privilege; those two follow the documented
    # GRANT/REVOKE ASSUMEROLE ... FOR COPY|ALL grammar and are checked textually above.
    checked = [s for s in statements if "assumerole" not in s]
    assert len(checked) == len(statements) - 2
    for sql in checked:
        assert "unparsable" not in repr(sqlfluff.parse(sql, dialect="redshift")), sql


# ---- migrations ---------------------------------------------------------------------------

MIGRATIONS = (
    ("0001_add_a", 'alter table "raw".transactions add column a integer'),
    ("0002_add_b", 'alter table "raw".transactions add column b integer'),
    ("0003_add_c", 'alter table "raw".transactions add column c integer'),
)


def test_pending_migrations_keep_their_order_and_skip_the_applied(bootstrap: ModuleType) -> None:
    assert bootstrap.pending_migrations(MIGRATIONS, frozenset()) == list(MIGRATIONS)
    assert bootstrap.pending_migrations(MIGRATIONS, frozenset({"0001_add_a"})) == list(
        MIGRATIONS[1:]
    )
    assert bootstrap.pending_migrations(MIGRATIONS, frozenset(i for i, _ in MIGRATIONS)) == []


@pytest.mark.parametrize(
    ("migrations", "applied", "message"),
    [
        ((*MIGRATIONS, MIGRATIONS[0]), set(), "not unique: 0001_add_a"),
        (MIGRATIONS, {"0001_add_a", "0009_from_a_newer_checkout"}, "does not know"),
        (MIGRATIONS, {"0001_add_a", "0003_add_c"}, "0002_add_b comes before the applied"),
    ],
)
def test_migrations_that_would_run_wrongly_are_refused(
    bootstrap: ModuleType, migrations: Any, applied: set[str], message: str
) -> None:
    with pytest.raises(bootstrap.BootstrapError, match=message):
        bootstrap.pending_migrations(migrations, frozenset(applied))


def test_a_migration_and_its_ledger_row_are_one_transaction(bootstrap: ModuleType) -> None:
    statements = bootstrap.migration_transaction(("0002_it's", "alter table t add column x int"))
    assert statements[0] == "alter table t add column x int"
    assert statements[1] == (
        'insert into "raw".schema_migrations (migration_id, applied_at)'
        " values ('0002_it''s', getdate())"
    )


def test_the_loader_declares_well_formed_migrations(bootstrap: ModuleType) -> None:
    assert bootstrap.pending_migrations(REDSHIFT_MIGRATIONS, frozenset()) == list(
        REDSHIFT_MIGRATIONS
    )


# ---- the loader's Redshift DDL: defaults of the column's own type --------------------------

# What each default expression Redshift accepts evaluates to (Redshift requires a default's
# type to match its column's). An expression missing here fails the test until classified.
DEFAULT_TYPES = {
    "getdate()": "timestamp",
    "sysdate": "timestamp",
    "current_date": "date",
    "true": "boolean",
    "false": "boolean",
    "0": "integer",
}
COLUMN = re.compile(
    r"^\s*(?P<name>[a-z_][a-z0-9_]*)\s+(?P<type>[a-z]+(?:\s+precision)?)(?:\([^)]*\))?"
    r"(?P<rest>[^,\n]*)",
    re.MULTILINE,
)


def mistyped_defaults(ddl: str) -> list[str]:
    """The columns of `ddl` whose default is not (known to be) of the column's type."""
    found = []
    for column in COLUMN.finditer(ddl):
        default = re.search(r"\bdefault\s+(\S+(?:\(\))?)", column["rest"])
        if default is None:
            continue
        declared = {"timestamp without time zone": "timestamp", "int": "integer"}.get(
            column["type"], column["type"]
        )
        if DEFAULT_TYPES.get(default[1]) != declared:
            found.append(f"{column['name']} {column['type']} default {default[1]}")
    return found


def test_the_checker_finds_a_mistyped_default() -> None:
    ddl = (
        "create table t (\n"
        "  a timestamptz not null default getdate(),\n"
        "  b timestamp default getdate()\n"
        ")"
    )
    assert mistyped_defaults(ddl) == ["a timestamptz default getdate()"]


def test_redshift_defaults_have_their_columns_types() -> None:
    ddl = [*REDSHIFT_DDL, *(sql for _, sql in REDSHIFT_MIGRATIONS)]
    columns = [m["name"] for sql in ddl for m in COLUMN.finditer(sql)]
    assert {"loaded_at", "rejected_at", "started_at"} <= set(columns)  # the parser sees them
    assert [d for sql in ddl for d in mistyped_defaults(sql)] == []


# ---- driving the Data API ----------------------------------------------------------------


class FakeDataApi:
    """Records statements and batches; fails the one containing `fail_on`."""

    def __init__(self, fail_on: str | None = None, applied: tuple[str, ...] = ()) -> None:
        self.calls: list[list[str]] = []  # one list per call: a statement, or a batch
        self.kwargs: list[dict[str, Any]] = []
        self.fail_on = fail_on
        self.applied = applied

    def execute_statement(self, **kwargs: Any) -> dict[str, str]:
        return self._record([kwargs.pop("Sql")], kwargs)

    def batch_execute_statement(self, **kwargs: Any) -> dict[str, str]:
        return self._record(list(kwargs.pop("Sqls")), kwargs)

    def _record(self, sql: list[str], kwargs: dict[str, Any]) -> dict[str, str]:
        self.kwargs.append(kwargs)
        self.calls.append(sql)
        return {"Id": str(len(self.calls))}

    def describe_statement(self, Id: str) -> dict[str, str]:
        sql = "\n".join(self.calls[int(Id) - 1])
        if self.fail_on and self.fail_on in sql:
            return {"Status": "FAILED", "Error": "permission denied"}
        return {"Status": "FINISHED"}

    def get_statement_result(self, Id: str) -> dict[str, Any]:
        sql = self.calls[int(Id) - 1][0]
        if "svv_roles" in sql:
            return {"Records": [[{"stringValue": "cafe_loader"}]]}
        if "schema_migrations" in sql:
            return {"Records": [[{"stringValue": i}] for i in self.applied]}
        return {"Records": []}


class FakeSecrets:
    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        user = SecretId.rsplit("/", 1)[-1]
        return {"SecretString": f'{{"username": "{user}", "password": "P4ss-{user}"}}'}


class Args:
    dbt_secret_arn = "arn:secret/cafe_dbt"
    reporting_secret_arn = "arn:secret/cafe_reporting"


def run(bootstrap: ModuleType, client: FakeDataApi, migrations: Any = MIGRATIONS) -> Any:
    api = bootstrap.DataApi(
        client, workgroup="wg", database="cafe", secret_arn="arn:admin", sleep=lambda _: None
    )
    return bootstrap.bootstrap(
        api,
        database="cafe",
        copy_role_arn=COPY_ROLE,
        secrets=FakeSecrets(),
        args=Args(),
        migrations=migrations,
    )


def test_tables_then_pending_migrations_then_access(bootstrap: ModuleType) -> None:
    client = FakeDataApi(applied=("0001_add_a",))
    summary = run(bootstrap, client)
    assert summary.migrations_applied == ("0002_add_b", "0003_add_c")
    batches = [call for call in client.calls if len(call) > 1]
    assert [batch[0] for batch in batches] == [MIGRATIONS[1][1], MIGRATIONS[2][1]]
    assert all("schema_migrations" in batch[1] for batch in batches)
    flat = [call[0] for call in client.calls]
    ledger_query = flat.index('select migration_id from "raw".schema_migrations')
    assert flat.index(REDSHIFT_DDL[0]) < ledger_query < flat.index(MIGRATIONS[1][1])
    assert flat.index(MIGRATIONS[2][1]) < flat.index("revoke assumerole on all from public for all")
    assert "create role cafe_loader" not in flat  # the fake says it exists
    assert {(k["WorkgroupName"], k["Database"], k["SecretArn"]) for k in client.kwargs} == {
        ("wg", "cafe", "arn:admin")
    }


def test_nothing_pending_runs_no_batch(bootstrap: ModuleType) -> None:
    client = FakeDataApi(applied=tuple(i for i, _ in MIGRATIONS))
    assert run(bootstrap, client).migrations_applied == ()
    assert all(len(call) == 1 for call in client.calls)


def test_a_failed_migration_stops_before_the_next_and_says_it_was_rolled_back(
    bootstrap: ModuleType,
) -> None:
    client = FakeDataApi(fail_on="add column b")
    with pytest.raises(
        bootstrap.BootstrapError, match="migration 0002_add_b failed and was rolled"
    ):
        run(bootstrap, client)
    assert not any("add column c" in sql for call in client.calls for sql in call)


def test_a_failed_statement_stops_with_its_step_and_position(bootstrap: ModuleType) -> None:
    with pytest.raises(
        bootstrap.BootstrapError, match=r"access: statement \d+ of \d+: permission denied"
    ):
        run(bootstrap, FakeDataApi(fail_on="grant assumerole"))


def test_every_raw_table_the_loader_creates_is_granted_to_the_loader_and_dbt(
    bootstrap: ModuleType,
) -> None:
    # A table added by a later migration (card keys, privacy records) would otherwise exist
    # on Redshift with no grant, and every load would fail with "permission denied".
    created = {
        f'"raw".{name}'
        for sql in (*REDSHIFT_DDL, *(sql for _, sql in REDSHIFT_MIGRATIONS))
        for name in re.findall(r'create table (?:if not exists )?"raw"\.(\w+)', sql, re.I)
    }
    assert '"raw".card_keys' in created
    assert created == set(bootstrap.RAW_TABLES)
    statements = access(bootstrap, set(), set())
    for table in created:
        assert any(table in s and "to role cafe_loader" in s for s in statements), table
        assert any(
            table in s and s.startswith("grant select on") and "cafe_dbt" in s for s in statements
        ), table
