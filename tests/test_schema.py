"""The target schema: tables.json generation, DDL, and the catalog reader, on a real PostgreSQL."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import psycopg
import pytest

from relocate.db.catalog import Catalog, ColumnInfo, TableInfo, read_catalog
from relocate.db.ddl import create_schema, load_tables, schema_statements
from relocate.db.ledger import LEDGER_TABLES
from relocate.schemas.registry import Registry
from relocate.schemas.registry_build import build_registry
from relocate.schemas.tables_build import (
    SIDE_EFFECT_MODELS,
    TablesError,
    build_tables,
    constraint_name,
    self_references,
)

SIDE_EFFECT_TABLES = {
    "sentry_lostpasswordhash",
    "sentry_organizationslugreservation",
    "sentry_organizationmapping",
    "sentry_organizationmembermapping",
    "sentry_regionimportchunk",
    "sentry_controlimportchunk",
    "sentry_controlimportchunkreplica",
    # Sentry's replicas of imported rows (relocate.logic.rules.replicas)
    "hybridcloud_apikeyreplica",
    "hybridcloud_apitokenreplica",
    "hybridcloud_organizationslugreservationreplica",
    "hybridcloud_orgauthtokenreplica",
    "sentry_authidentityreplica",
    "sentry_authproviderreplica",
    "sentry_organizationmember_teamsreplica",
    "sentry_teamreplica",
}


@pytest.fixture(scope="module")
def tables() -> dict:
    return load_tables()["tables"]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture(scope="module")
def catalog(template_dsn: str) -> Catalog:
    """The catalog of the full schema, read once from the template database (read-only).

    The connection is closed before any test clones the template (a clone fails while
    another session is connected to it).
    """
    with psycopg.connect(template_dsn) as conn:
        return read_catalog(conn)


def _pg_type(ddl_type: str) -> str:
    """The format_type spelling of a tables.json type."""
    t = {"bigserial": "bigint", "serial": "integer", "timestamptz": "timestamp with time zone"}
    base, arr = (ddl_type[:-2], "[]") if ddl_type.endswith("[]") else (ddl_type, "")
    base = t.get(base, base)
    base = re.sub(r"^varchar", "character varying", base)
    return base + arr


def _field_to_column(entry: dict) -> dict[str, str]:
    """Export field -> column; detailed.json unique sets sometimes name the column itself."""
    out = {c["column"]: c["column"] for c in entry["columns"]}
    out.update({c["field"]: c["column"] for c in entry["columns"]})
    return out


# -- tables_build: pure functions -------------------------------------------------------------


def _col(name: str, pg_type: str = "bigint", **kw) -> dict:
    base = {
        "name": name,
        "pg_type": pg_type,
        "null": False,
        "default": None,
        "unique": False,
        "fk_to": None,
        "django_field": "BoundedBigIntegerField",
        "max_length": None,
    }
    base.update(kw)
    return base


def _mini_columns() -> dict:
    return {
        "app.node": {
            "table": "app_node",
            "columns": [
                _col("id", "bigserial", unique=True, django_field="BoundedBigAutoField"),
                _col("parent_id", null=True, fk_to="app.node", django_field="FlexibleForeignKey"),
                _col(
                    "root_id",
                    null=True,
                    fk_to="app_node(id)",
                    field="root_id",
                    django_field="HybridCloudForeignKey",
                    db_constraint=False,
                ),
                _col(
                    "owner_id",
                    fk_to="app.owner",
                    django_field="FlexibleForeignKey",
                    note="db_constraint=False -> no FK constraint",
                ),
                _col("gone_id", null=True, fk_to="app.gone", django_field="FlexibleForeignKey"),
                _col("status", "integer CHECK (col >= 0)", default="0 (Status.ACTIVE)"),
                _col("order", "integer", check="order >= 0", default=3),
                _col("created", "timestamptz", default="callable:django.utils.timezone.now"),
                _col("data", "text", default="callable:dict"),
                _col("meta", "jsonb", default="dict"),
                _col("tags", "text[]", default="list", null=True),
                _col("email", "citext", unique=True, django_field="CIEmailField"),
                _col("label", "varchar(32)", default="'user' (UseCase.USER.value)"),
                _col("token", "varchar(64)", default="callable:generate_token", unique=True),
                _col("flag", "boolean", default=None, db_default=True),
            ],
            "unique_together": [["parent", "label"]],
            "constraints": [
                "UniqueConstraint node_partial (owner_id) WHERE parent_id IS NULL",
                (
                    "CheckConstraint node_owner: (parent_id IS NOT NULL AND root_id IS NULL) "
                    "OR (parent_id IS NULL AND root_id IS NOT NULL) OR (both NULL)"
                ),
            ],
            "indexes": [],
        },
        "app.owner": {
            "table": "app_owner",
            "columns": [_col("id", "bigserial", unique=True)],
            "unique_together": [],
            "constraints": [],
            "indexes": [],
        },
    }


def _mini_registry() -> dict:
    return {
        "models": [
            {"name": "app.owner", "table": "app_owner", "foreign_keys": [], "uniques": []},
            {
                "name": "app.node",
                "table": "app_node",
                "foreign_keys": [
                    {
                        "field": "parent",
                        "column": "parent_id",
                        "target": "app.node",
                        "nullable": True,
                        "kind": "FlexibleForeignKey",
                        "excluded": False,
                    },
                ],
                "uniques": [["label", "parent"], ["meta"]],
            },
        ],
        "excluded": {"app.gone": "app_gone"},
    }


def test_self_references_finds_fk_to_own_table() -> None:
    refs = self_references(_mini_columns())
    assert refs == {"app.node": ["parent_id", "root_id"]}


def test_self_references_of_sentry_columns_is_empty(sentry_columns: Path) -> None:
    columns = json.loads(sentry_columns.read_text())
    assert self_references(columns) == {}


def test_build_tables_translates_columns() -> None:
    doc = build_tables(_mini_columns(), _mini_registry())
    node = doc["tables"]["app.node"]
    cols = {c["column"]: c for c in node["columns"]}
    assert cols["parent_id"]["field"] == "parent"
    assert cols["root_id"]["field"] == "root_id"
    assert cols["owner_id"]["field"] == "owner"
    assert cols["status"]["type"] == "integer" and cols["status"]["default"] == "0"
    assert cols["order"]["default"] == "3"
    assert cols["created"]["default"] == "now()"
    assert cols["data"]["default"] == "'{}'"
    assert cols["meta"]["default"] == "'{}'::jsonb"
    assert cols["tags"]["default"] == "'{}'"
    assert cols["email"]["type"] == "text"
    assert cols["label"]["default"] == "'user'"
    assert "gen_random_uuid()" in cols["token"]["default"]
    assert cols["flag"]["default"] == "true"
    assert {c["name"]: c["expression"] for c in node["checks"]} == {
        "app_node_status_check": '"status" >= 0',
        "app_node_order_check": '"order" >= 0',
        "node_owner": "(parent_id IS NOT NULL AND root_id IS NULL) OR (parent_id IS NULL AND "
        "root_id IS NOT NULL) OR (parent_id IS NULL AND root_id IS NULL)",
    }
    # Only the self-FK is real: root is HybridCloud, owner has db_constraint=False, the
    # target of gone_id is not in the schema.
    assert [(f["column"], f["ref_table"]) for f in node["foreign_keys"]] == [
        ("parent_id", "app_node")
    ]
    assert cols["gone_id"]["fk"] == "app_gone"
    assert sorted(map(sorted, node["uniques"])) == [["label", "parent_id"], ["meta"], ["token"]]
    exprs = {i["name"]: i for i in node["unique_indexes"]}
    assert exprs["app_node_email_lower_uniq"]["expression"] == 'lower("email")'
    assert exprs["node_partial"]["where"] == "parent_id IS NULL"
    assert "meta" in node["notes"] and "gone_id" in node["notes"]
    assert doc["tables"]["app.owner"]["relocatable"] is True


def test_build_tables_rejects_unknown_default() -> None:
    columns = _mini_columns()
    columns["app.owner"]["columns"].append(_col("x", "integer", default="callable:mystery"))
    with pytest.raises(TablesError, match="app.owner.x"):
        build_tables(columns, _mini_registry())


def test_build_tables_rejects_missing_model() -> None:
    registry = _mini_registry()
    registry["models"].append(
        {"name": "app.ghost", "table": "app_ghost", "foreign_keys": [], "uniques": []}
    )
    with pytest.raises(TablesError, match="app.ghost"):
        build_tables(_mini_columns(), registry)


def test_constraint_name_fits_postgres_limit() -> None:
    long = constraint_name(
        "workflow_engine_alertruletriggerdatacondition", "alert_rule_trigger_id", "fk"
    )
    assert len(long) <= 63
    assert long == constraint_name(
        "workflow_engine_alertruletriggerdatacondition", "alert_rule_trigger_id", "fk"
    )
    assert constraint_name("a", "b") == "a_b"


def test_committed_files_are_up_to_date(fixtures_dir: Path, sentry_columns: Path) -> None:
    deps = fixtures_dir / "model_dependencies"
    columns = json.loads(sentry_columns.read_text())
    registry_doc = build_registry(
        json.loads((deps / "detailed.json").read_text()),
        json.loads((deps / "sorted.json").read_text()),
        self_references(columns),
    )
    assert build_tables(columns, registry_doc) == load_tables(), (
        "tables.json is stale: run scripts/generate_schemas.py"
    )


def test_tables_json_covers_registry_and_side_effects(tables: dict, registry: Registry) -> None:
    assert {m.name for m in registry.models} | set(SIDE_EFFECT_MODELS) == set(tables)
    for model in registry.models:
        assert tables[model.name]["table"] == model.table
        assert tables[model.name]["relocatable"]
    assert {tables[m]["table"] for m in SIDE_EFFECT_MODELS} == SIDE_EFFECT_TABLES
    assert all(not tables[m]["relocatable"] for m in SIDE_EFFECT_MODELS)
    user_cols = [c["column"] for c in tables["sentry.user"]["columns"]]
    assert "email_unique" not in user_cols and "first_name" in user_cols


# -- DDL ----------------------------------------------------------------------------------------


def test_create_schema_creates_every_table(
    empty_db_dsn: str, tables: dict, registry: Registry
) -> None:
    with psycopg.connect(empty_db_dsn) as conn:
        create_schema(conn)
        catalog = read_catalog(conn)
    names = set(catalog.table_names)
    assert {m.table for m in registry.models} <= names
    assert len({m.table for m in registry.models}) == 95
    assert names >= SIDE_EFFECT_TABLES
    assert set(LEDGER_TABLES) <= names
    assert names == {e["table"] for e in tables.values()} | set(LEDGER_TABLES)


def test_create_schema_twice_is_harmless_and_restores_missing(empty_db_dsn: str) -> None:
    with psycopg.connect(empty_db_dsn) as conn:
        create_schema(conn)
        first = read_catalog(conn)
        create_schema(conn)
        assert read_catalog(conn) == first
        conn.execute("ALTER TABLE sentry_useremail DROP CONSTRAINT sentry_useremail_user_id_fk")
        conn.execute("DROP INDEX sentry_email_email_lower_uniq")
        conn.execute("ALTER TABLE auth_user DROP CONSTRAINT auth_user_username_uniq")
        conn.commit()
        assert read_catalog(conn) != first
        create_schema(conn)
        assert read_catalog(conn) == first


def test_schema_statements_build_the_same_schema(empty_db_dsn: str, catalog: Catalog) -> None:
    with psycopg.connect(empty_db_dsn) as conn:
        for stmt in schema_statements():
            conn.execute(stmt.encode())
        conn.commit()
        assert read_catalog(conn) == catalog


def test_columns_match_tables_json(catalog: Catalog, tables: dict) -> None:
    for entry in tables.values():
        table = catalog.table(entry["table"])
        assert table is not None, entry["table"]
        assert [c.name for c in table.columns] == [c["column"] for c in entry["columns"]]
        assert table.primary_key == tuple(entry["primary_key"])
        for spec in entry["columns"]:
            col = table.column(spec["column"])
            where = f"{entry['table']}.{spec['column']}"
            assert col.type == _pg_type(spec["type"]), where
            assert col.nullable == spec["nullable"], where
            if spec["type"] in ("bigserial", "serial"):
                assert col.default.startswith("nextval("), where
            else:
                assert (col.default is None) == (spec["default"] is None), where
            if spec["type"].endswith("[]"):
                assert col.element_type == _pg_type(spec["type"][:-2]), where
        assert table.id_sequence == f"public.{entry['table']}_id_seq"


def test_registry_uniques_exist(catalog: Catalog, tables: dict, registry: Registry) -> None:
    for model in registry.models:
        entry = tables[model.name]
        field_to_col = _field_to_column(entry)
        table = catalog.table(model.table)
        present = []
        for u in table.uniques:
            # An expression key lower(col) makes col unique case-insensitively.
            cols = [re.sub(r"^lower\(\(?(\w+)\)?(::text)?\)$", r"\1", c) for c in u.columns]
            present.append(frozenset(cols))
        for unique in model.uniques:
            wanted = frozenset(field_to_col[f] for f in unique)
            assert wanted in present, f"{model.name}: unique {sorted(wanted)} missing"


def test_unique_kinds(catalog: Catalog) -> None:
    email = catalog.table("sentry_email")
    (lower,) = [u for u in email.uniques if u.expression]
    assert lower.columns == ("lower(email)",) and not lower.constraint
    snooze = catalog.table("sentry_rulesnooze")
    partial = {u.name: u.predicate for u in snooze.uniques if u.predicate}
    assert partial == {
        "unique_rule_user": "user_id IS NULL",
        "unique_alert_rule_user": "user_id IS NULL",
    }
    view = catalog.table("sentry_groupsearchview")
    deferrable = [u for u in view.uniques if u.deferrable]
    assert [u.columns for u in deferrable] == [("user_id", "organization_id", "position")]
    assert ("username",) in catalog.table("auth_user").unique_sets()


def test_foreign_keys_match_tables_json(catalog: Catalog, tables: dict, registry: Registry) -> None:
    for entry in tables.values():
        table = catalog.table(entry["table"])
        got = {
            (fk.columns, fk.ref_table, fk.ref_columns, fk.deferrable, fk.initially_deferred)
            for fk in table.foreign_keys
        }
        want = {
            ((fk["column"],), fk["ref_table"], ("id",), True, True) for fk in entry["foreign_keys"]
        }
        assert got == want, entry["table"]
    # Plain references and references to excluded models never get a constraint.
    for model in registry.models:
        table = catalog.table(model.table)
        for fk in model.foreign_keys:
            if fk.kind in ("HybridCloudForeignKey", "ImplicitForeignKey") or fk.excluded:
                assert table.foreign_key_for(fk.column) is None, f"{model.name}.{fk.column}"
    member = catalog.table("sentry_organizationmember")
    assert member.foreign_key_for("organization_id").ref_table == "sentry_organization"
    assert member.foreign_key_for("user_id") is None  # HybridCloudForeignKey
    assert catalog.table("sentry_lostpasswordhash").foreign_key_for("user_id").ref_table == (
        "auth_user"
    )


def test_every_real_fk_is_a_registry_fk_or_side_effect(tables: dict, registry: Registry) -> None:
    for model in registry.models:
        fk_columns = {fk.column for fk in model.foreign_keys}
        for fk in tables[model.name]["foreign_keys"]:
            assert fk["column"] in fk_columns, f"{model.name}.{fk['column']}"


def test_insert_omitting_defaulted_not_null_columns(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        user_id, active, staff, joined, flags, avatar = conn.execute(
            "INSERT INTO auth_user (password, username, first_name, email)"
            " VALUES ('x', 'a@example.com', '', 'a@example.com')"
            " RETURNING id, is_active, is_staff, date_joined, flags, avatar_type"
        ).fetchone()
        assert (active, staff, flags, avatar) == (True, False, 0, 0) and joined is not None
        hash_, verified = conn.execute(
            "INSERT INTO sentry_useremail (user_id, email) VALUES (%s, 'a@example.com')"
            " RETURNING validation_hash, is_verified",
            (user_id,),
        ).fetchone()
        assert re.fullmatch(r"[0-9a-f]{32}", hash_) and verified is False
        (token,) = conn.execute(
            "INSERT INTO sentry_apitoken (scopes, user_id) VALUES (0, %s) RETURNING token",
            (user_id,),
        ).fetchone()
        assert re.fullmatch(r"[0-9a-f]{64}", token)
        org = conn.execute(
            "INSERT INTO sentry_organization (name, slug) VALUES ('o', 'o')"
            " RETURNING status, default_role, flags, is_test, date_added"
        ).fetchone()
        assert org[:4] == (0, "member", 1, False) and org[4] is not None
        chunk = conn.execute(
            "INSERT INTO sentry_regionimportchunk (import_uuid, model, min_ordinal, max_ordinal,"
            " min_source_pk, max_source_pk) VALUES (gen_random_uuid(), 'sentry.project', 1, 1,"
            " 1, 1) RETURNING inserted_map, date_updated"
        ).fetchone()
        assert chunk[0] == {} and chunk[1] is not None


def test_not_null_and_checks_are_enforced(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as conn:
        with pytest.raises(psycopg.errors.NotNullViolation):
            conn.execute(
                "INSERT INTO auth_user (password, username, first_name) VALUES ('x', 'u', '')"
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO auth_user (password, username, first_name, email, "
                "avatar_type) VALUES ('x', 'u', '', 'e', -1)"
            )
        conn.rollback()
        conn.execute("INSERT INTO sentry_email (email) VALUES ('A@example.com')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO sentry_email (email) VALUES ('a@EXAMPLE.com')")
        conn.rollback()
        # Deferred FK: a dangling reference fails at commit, not at the INSERT.
        conn.execute("INSERT INTO sentry_useremail (user_id, email) VALUES (999, 'e')")
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.commit()


# -- the catalog reader -------------------------------------------------------------------------


def _shape(table: TableInfo) -> list[tuple[str, str, bool, bool]]:
    return [(c.name, c.type, c.nullable, c.default is not None) for c in table.columns]


def test_catalog_auth_user(catalog: Catalog) -> None:
    user = catalog.table("auth_user")
    assert _shape(user) == [
        ("id", "bigint", False, True),
        ("password", "character varying(128)", False, False),
        ("last_login", "timestamp with time zone", True, False),
        ("username", "character varying(128)", False, False),
        ("first_name", "character varying(200)", False, False),
        ("email", "character varying(200)", False, False),
        ("is_staff", "boolean", False, True),
        ("is_active", "boolean", False, True),
        ("is_unclaimed", "boolean", False, True),
        ("is_superuser", "boolean", False, True),
        ("is_managed", "boolean", False, True),
        ("is_sentry_app", "boolean", True, False),
        ("is_password_expired", "boolean", False, True),
        ("last_password_change", "timestamp with time zone", True, False),
        ("flags", "bigint", False, True),
        ("session_nonce", "character varying(12)", True, False),
        ("date_joined", "timestamp with time zone", False, True),
        ("last_active", "timestamp with time zone", True, True),
        ("avatar_type", "smallint", False, True),
        ("avatar_url", "character varying(120)", True, False),
    ]
    assert user.column("id").default == "nextval('auth_user_id_seq'::regclass)"
    assert user.column("id").identity is None
    assert user.column("date_joined").default == "now()"
    assert user.column("is_active").default == "true"
    assert user.column("nope") is None
    assert user.primary_key == ("id",)
    assert user.id_sequence == "public.auth_user_id_seq"
    assert [u.columns for u in user.uniques] == [("username",)]
    assert user.foreign_keys == ()
    assert [c.expression for c in user.checks] == ["CHECK (avatar_type >= 0)"]


def test_catalog_useremail(catalog: Catalog) -> None:
    email = catalog.table("sentry_useremail")
    assert _shape(email) == [
        ("id", "bigint", False, True),
        ("user_id", "bigint", False, False),
        ("email", "character varying(200)", False, False),
        ("validation_hash", "character varying(32)", False, True),
        ("date_hash_added", "timestamp with time zone", False, True),
        ("is_verified", "boolean", False, True),
    ]
    assert [u.columns for u in email.uniques] == [("user_id", "email")]
    (fk,) = email.foreign_keys
    assert (fk.columns, fk.ref_schema, fk.ref_table, fk.ref_columns) == (
        ("user_id",),
        "public",
        "auth_user",
        ("id",),
    )
    assert fk.deferrable and fk.initially_deferred


def test_catalog_organizationmember(catalog: Catalog) -> None:
    member = catalog.table("sentry_organizationmember")
    assert _shape(member) == [
        ("id", "bigint", False, True),
        ("organization_id", "bigint", False, False),
        ("user_id", "bigint", True, False),
        ("email", "character varying(75)", True, False),
        ("role", "character varying(32)", False, True),
        ("flags", "bigint", False, True),
        ("token", "character varying(64)", True, False),
        ("date_added", "timestamp with time zone", False, True),
        ("token_expires_at", "timestamp with time zone", True, False),
        ("has_global_access", "boolean", False, True),
        ("inviter_id", "bigint", True, False),
        ("invite_status", "smallint", True, True),
        ("type", "integer", False, True),
        ("user_is_active", "boolean", False, True),
        ("user_email", "character varying(75)", True, False),
    ]
    assert member.column("role").default == "'member'::character varying"
    assert sorted(u.columns for u in member.uniques) == [
        ("organization_id", "email"),
        ("organization_id", "user_id"),
        ("token",),
    ]
    assert [(f.columns, f.ref_table) for f in member.foreign_keys] == [
        (("organization_id",), "sentry_organization")
    ]
    assert sorted(c.name for c in member.checks) == [
        "sentry_organizationmember_invite_status_check",
        "sentry_organizationmember_type_check",
    ]


def test_catalog_arrays_and_pickling(catalog: Catalog) -> None:
    app = catalog.table("sentry_apiapplication")
    scopes = app.column("scopes")
    assert (scopes.type, scopes.element_type) == ("text[]", "text")
    tickets = catalog.table("sentry_datasecrecywaiver").column("zendesk_tickets")
    assert (tickets.type, tickets.element_type) == (
        "character varying(255)[]",
        "character varying(255)",
    )
    assert catalog.table("auth_user").column("email").element_type is None
    assert pickle.loads(pickle.dumps(catalog)) == catalog
    assert "auth_user" in catalog and "nope" not in catalog and catalog.table("nope") is None


def test_catalog_reads_sentry_style_tables(empty_db_dsn: str) -> None:
    """Identity ids, citext, extra tables and another schema, as a real Sentry DB may have."""
    with psycopg.connect(empty_db_dsn) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS citext")
        conn.execute(
            "CREATE TABLE sentry_email (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
            " email citext NOT NULL UNIQUE, date_added timestamptz NOT NULL, extra int)"
        )
        conn.execute('CREATE SCHEMA "Other"')
        conn.execute('CREATE TABLE "Other".t (id serial PRIMARY KEY, "Odd Name" text)')
        conn.execute("CREATE VIEW v AS SELECT 1 AS x")
        conn.commit()
        public = read_catalog(conn)
        other = read_catalog(conn, "Other")
        missing = read_catalog(conn, "nope")
    assert public.table_names == ("sentry_email",)
    email = public.table("sentry_email")
    assert email.column("id") == ColumnInfo(
        name="id",
        type="bigint",
        element_type=None,
        nullable=False,
        default=None,
        identity="by default",
        generated=False,
        position=1,
    )
    assert email.column("email").type == "citext"
    assert email.id_sequence == "public.sentry_email_id_seq"
    assert [u.columns for u in email.uniques] == [("email",)]
    assert other.table("t").column("Odd Name").type == "text"
    assert other.table("t").id_sequence == '"Other".t_id_seq'
    assert missing.tables == ()
