"""No `users` or `organizations` import grants privileges or keeps a usable password.

Property-based (hypothesis): whatever the user rows say - flags as booleans, 0/1,
"true"/"True"/"1" strings, null or missing; passwords empty, "!", unusable, real pbkdf2
hashes or odd text; near-miss field names ("is_superuser "), duplicate JSON keys (the
last wins, written by hand), upper-case model names, duplicate usernames and case
variants, the privilege models (userrole, userpermission, userroleuser, apitoken,
authenticator) - the import creates no superuser, staff or managed user, stores no
imported password, and never touches an existing superuser of the same name (with or
without ``--merge-users``). Each example is a real import, so there are few of them.
Config and Global imports, which do keep the flags (spec 6.1, 7), are checked once each.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from .conftest import TEMPLATE_DB
from .helpers import (
    IMPORTED_PASSWORD,
    TS,
    apitoken,
    import_export,
    query,
    row,
    scalar,
    user,
    useroption,
    userpermission,
    userrole,
    userroleuser,
)

FEW = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)

#: A field left out of the row.
MISSING = object()

FLAGS = ("is_staff", "is_superuser", "is_managed", "is_unclaimed", "is_active")

#: How an export may spell a flag: accepted spellings, and rarer ones that must fail the
#: import cleanly (a ValidationError, nothing written).
FLAG_VALUES = st.sampled_from(
    [MISSING, True, False, 0, 1, "true", "false", "True", "FALSE", "t", "f", 1.0, None]
)
INVALID_FLAG_VALUES = st.sampled_from(["yes", "1", "0", 2, -1, [True], {"value": True}])

PBKDF2 = "pbkdf2_sha256$600000$c2FsdHNhbHQ$bEGm0D5FTA0F2c0m/0o8BqGN0C5hNyD5tgm0p5Z5X8k="
PASSWORDS = st.one_of(
    st.sampled_from(
        [
            "",
            "!",
            "!unusable-" + "x" * 30,
            IMPORTED_PASSWORD,
            PBKDF2,
            "md5$salt$5f4dcc3b5aa765d61d8327deb882cf99",
            "bcrypt_sha256$$2b$12$abcdefghijklmnopqrstuuJ1lZ9G1Jx0hU2Wj5wL9c1GmQx7E6G8a",
            "plaintext password",
            "sha1$$",
        ]
    ),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
)

USERNAMES = st.one_of(
    st.sampled_from(["admin", "Admin", "ADMIN", "admin ", " admin", "root", "alice", "Alice", ""]),
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=1,
        max_size=12,
    ),
)
EMAILS = st.sampled_from(["a@example.com", "A@Example.com", "root@example.com", "", "x@y.z"])
MODEL_SPELLINGS = st.sampled_from(["sentry.user", "SENTRY.USER", "Sentry.User"])

#: Field names that look like a flag but are not one (must be ignored).
NEAR_MISSES = st.sampled_from(
    [
        "is_superuser ",
        " is_superuser",
        "IS_SUPERUSER",
        "is_superuser\t",
        "is_superuser\u200b",
        "isSuperuser",
        "is_staff ",
        "superuser",
        "is-managed",
    ]
)

EXISTING_PASSWORD = "pbkdf2_sha256$600000$existing$Q2FmZWJhYmVDYWZlYmFiZUNhZmViYWJlQ2FmZWJhYmU="


@st.composite
def user_rows(draw: Any, usernames: Any = USERNAMES) -> dict[str, Any]:
    """A generated user row, with what the JSON text must add by hand."""
    pk = draw(st.integers(1, 4))
    fields = user(pk, "placeholder")["fields"]
    fields["username"] = draw(usernames)
    fields["email"] = draw(EMAILS)
    for flag in FLAGS:
        value = draw(FLAG_VALUES)
        if value is MISSING:
            del fields[flag]
        else:
            fields[flag] = value
    fields["password"] = draw(PASSWORDS)
    # About one row in twelve breaks a flag, one in twelve the password (null or missing).
    broken = draw(st.integers(0, 11))
    if broken == 0:
        fields[draw(st.sampled_from(FLAGS))] = draw(INVALID_FLAG_VALUES)
    elif broken == 1 and draw(st.booleans()):
        fields["password"] = None
    elif broken == 1:
        del fields["password"]
    for name in draw(st.lists(NEAR_MISSES, unique=True, max_size=3)):
        fields[name] = True
    return {
        "model": draw(MODEL_SPELLINGS),
        "pk": pk,
        "fields": fields,
        # Written after the other fields: duplicate keys, the last one wins.
        "duplicates": draw(st.lists(st.sampled_from(FLAGS[:3]), unique=True, max_size=3)),
    }


def privilege_rows(user_pks: list[int]) -> list[dict]:
    """Rows of the privilege models, owned by the imported users."""
    out: list[dict] = [userrole(1, "Super Admin", ["users.admin", "options.admin"])]
    for n, pk in enumerate(user_pks, start=1):
        out += [
            userpermission(n, pk, "users.admin"),
            userroleuser(n, pk, 1),
            apitoken(n, pk, f"token-{n}-" + "t" * 50),
            row(
                "sentry.authenticator",
                n,
                user=pk,
                type=1,
                config={},
                created_at=TS,
                last_used_at=None,
            ),
        ]
    return out


def export_text(users: list[dict], extra: list[dict]) -> str:
    """The export as JSON text, with the duplicate keys written by hand."""
    parts = []
    for u in users:
        fields = json.dumps(u["fields"])[:-1]
        for flag in u["duplicates"]:
            fields += f', "{flag}": true'
        parts.append(
            f'{{"model": {json.dumps(u["model"])}, "pk": {u["pk"]}, "fields": {fields}}}}}'
        )
    parts += [json.dumps(r) for r in extra]
    return "[\n" + ",\n".join(parts) + "\n]"


# ----------------------------------------------------------------------------------------
# Databases: one fresh database per example (hypothesis reuses function-scoped fixtures).

_names = itertools.count()


@contextmanager
def fresh_database(pg_server: str) -> Iterator[str]:
    name = f"t_priv_{os.getpid()}_{next(_names)}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    try:
        yield psycopg.conninfo.make_conninfo(pg_server, dbname=name)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def server(pg_server: str, template_dsn: str) -> str:
    """The test server, with the template database built."""
    del template_dsn
    return pg_server


def add_existing_superuser(dsn: str) -> int:
    """An existing superuser ``admin`` (staff, managed) with a permission of its own."""
    with psycopg.connect(dsn) as conn:
        (user_id,) = conn.execute(
            "INSERT INTO auth_user (password, username, first_name, email, is_staff, "
            "is_superuser, is_managed, is_active, is_unclaimed, is_password_expired, flags, "
            "date_joined, avatar_type) VALUES (%s, 'admin', 'Root', 'root@example.com', true, "
            "true, true, true, false, false, 0, %s, 0) RETURNING id",
            (EXISTING_PASSWORD, TS),
        ).fetchone()
        conn.execute(
            "INSERT INTO sentry_userpermission (user_id, permission) VALUES (%s, 'users.admin')",
            (user_id,),
        )
    return user_id


def snapshot(dsn: str, user_id: int) -> tuple:
    return (
        query(dsn, "SELECT * FROM auth_user WHERE id = %s", (user_id,)),
        query(dsn, "SELECT * FROM sentry_userpermission WHERE user_id = %s", (user_id,)),
        query(dsn, "SELECT * FROM sentry_useremail WHERE user_id = %s ORDER BY id", (user_id,)),
        query(dsn, "SELECT * FROM sentry_useroption WHERE user_id = %s ORDER BY id", (user_id,)),
    )


def distinct_usernames(dsn: str, users: list[dict], merged_into: str | None) -> int:
    """How many users the rows leave with ``--merge-users``: names that differ only in case
    are one user (issue 13.7), and one that matches ``merged_into`` is that existing user.
    PostgreSQL's lower() decides, as the import's does. (A blank username is a finding,
    not a fallback to the email: such a run ends in the failure branch.)"""
    names = [u["fields"]["username"] for u in users]
    return scalar(
        dsn,
        "SELECT count(DISTINCT lower(n)) FILTER (WHERE lower(n) IS DISTINCT FROM lower(%s)) "
        "FROM unnest(%s::text[]) AS n",
        (merged_into, names),
    )


def run_and_check(
    dsn: str,
    tmp: Path,
    scope: str,
    users: list[dict],
    extra: list[dict],
    *flags: str,
    existing: int | None = None,
) -> None:
    """Imports, then checks that nobody was elevated and no password was kept."""
    before = snapshot(dsn, existing) if existing is not None else None
    src = tmp / "export.json"
    src.write_text(export_text(users, extra), encoding="utf-8")
    findings_file = tmp / "findings.json"
    run = import_export(dsn, scope, src, "--findings-file", str(findings_file), *flags)
    event(f"exit {run.code}")
    others = query(
        dsn,
        "SELECT id, username, password, is_staff, is_superuser, is_managed, is_unclaimed "
        "FROM auth_user WHERE id IS DISTINCT FROM %s",
        (existing,),
    )
    # The existing superuser is exactly as it was (its flags, password, email, options).
    if existing is not None:
        assert snapshot(dsn, existing) == before
    # Nobody else is staff, superuser or managed; nobody holds an imported password.
    exported = {u["fields"].get("password") for u in users} | {EXISTING_PASSWORD}
    for _, username, password, staff, superuser, managed, unclaimed in others:
        assert (staff, superuser, managed) == (False, False, False), username
        assert unclaimed is True, username
        assert password and password not in exported, username
        # A hash of a random password, or Django's unusable-password marker ("!...").
        assert password.startswith(("pbkdf2_sha256$", "!")) and len(password) > 30, username
    assert scalar(dsn, "SELECT count(*) FROM auth_user WHERE is_superuser OR is_staff") == (
        0 if existing is None else 1
    )
    # The privilege models are never imported by these scopes.
    assert scalar(dsn, "SELECT count(*) FROM sentry_userpermission") == (
        0 if existing is None else 1
    )
    for table in ("sentry_userrole", "sentry_userrole_users", "sentry_apitoken"):
        assert scalar(dsn, f"SELECT count(*) FROM {table}") == 0, table
    assert scalar(dsn, "SELECT count(*) FROM auth_authenticator") == 0

    if run.code != 0:
        # A bad value (e.g. "yes" for a flag): a clean finding, and nothing written.
        assert run.code == 1, run.err
        findings = json.loads(findings_file.read_text())
        assert findings, run.err
        assert {f["kind"] for f in findings} <= {"ValidationError", "DeserializationFailed"}
        assert others == []
        assert scalar(dsn, "SELECT count(*) FROM relocate_pk_map") == 0
        return
    assert json.loads(findings_file.read_text()) == []
    first_rows = list({u["pk"]: u for u in reversed(users)}.values())
    if "--merge-users" in flags:
        expected = distinct_usernames(dsn, first_rows, "admin" if existing else None)
        assert len(others) == expected
    else:
        assert len(others) == len(first_rows)


# ----------------------------------------------------------------------------------------
# Property: whatever the rows say, users and organizations imports grant nothing.


@pytest.mark.slow
@FEW
@given(
    scope=st.sampled_from(["users", "organizations"]),
    users=st.lists(user_rows(), min_size=1, max_size=4),
    with_privilege_rows=st.booleans(),
)
@example(
    scope="users",
    users=[
        {
            "model": "SENTRY.USER",
            "pk": 1,
            "fields": user(1, "sneaky", is_superuser="True", is_staff=1, is_managed="t")["fields"]
            | {"is_superuser ": True, "IS_STAFF": True},
            "duplicates": ["is_superuser", "is_staff", "is_managed"],
        }
    ],
    with_privilege_rows=True,
)
@example(
    scope="organizations",
    users=[
        {
            "model": "sentry.user",
            "pk": 1,
            "duplicates": [],
            "fields": user(1, "dup", password=PBKDF2, is_superuser=True)["fields"],
        },
        {
            "model": "sentry.user",
            "pk": 2,
            "duplicates": ["is_superuser"],
            "fields": user(2, "Dup", password="", is_unclaimed=False)["fields"],
        },
    ],
    with_privilege_rows=False,
)
def test_user_rows_never_grant_privileges(
    server: str,
    tmp_path_factory: pytest.TempPathFactory,
    scope: str,
    users: list[dict],
    with_privilege_rows: bool,
) -> None:
    extra = privilege_rows(sorted({u["pk"] for u in users})) if with_privilege_rows else []
    with fresh_database(server) as dsn:
        run_and_check(dsn, tmp_path_factory.mktemp("priv"), scope, users, extra)


ADMIN_VARIANTS = st.sampled_from(["admin", "admin", "Admin", "ADMIN", "admin ", ""])


@pytest.mark.slow
@FEW
@given(
    scope=st.sampled_from(["users", "organizations"]),
    merge=st.booleans(),
    users=st.lists(user_rows(ADMIN_VARIANTS), min_size=1, max_size=3),
    with_options=st.booleans(),
)
@example(
    scope="users",
    merge=True,
    users=[
        {
            "model": "sentry.user",
            "pk": 7,
            "duplicates": ["is_superuser"],
            "fields": user(
                7,
                "admin",
                "evil@example.com",
                password=PBKDF2,
                is_superuser=False,
                is_staff=False,
                is_active=False,
            )["fields"],
        },
    ],
    with_options=True,
)
@example(
    scope="organizations",
    merge=False,
    users=[
        {
            "model": "sentry.user",
            "pk": 7,
            "duplicates": [],
            "fields": user(7, "admin", password=EXISTING_PASSWORD, is_superuser=True)["fields"],
        },
    ],
    with_options=True,
)
def test_existing_superuser_is_never_modified(
    server: str,
    tmp_path_factory: pytest.TempPathFactory,
    scope: str,
    merge: bool,
    users: list[dict],
    with_options: bool,
) -> None:
    extra = privilege_rows(sorted({u["pk"] for u in users}))
    if with_options:
        extra += [useroption(n, u["pk"], "language", '"de"') for n, u in enumerate(users, 1)]
    flags = ("--merge-users",) if merge else ()
    with fresh_database(server) as dsn:
        existing = add_existing_superuser(dsn)
        run_and_check(
            dsn, tmp_path_factory.mktemp("merge"), scope, users, extra, *flags, existing=existing
        )


# ----------------------------------------------------------------------------------------
# The privilege models in users and organizations imports: skipped, and reported as such.


@pytest.mark.parametrize("scope", ["users", "organizations"])
def test_privilege_models_are_skipped_and_reported(db_dsn: str, tmp_path: Path, scope: str) -> None:
    rows = [user(1, "holder"), *privilege_rows([1]), useroption(1, 1, "is_superuser", "true")]
    src = tmp_path / "p.json"
    src.write_text(json.dumps(rows))
    report_file = tmp_path / "report.json"
    run = import_export(db_dsn, scope, src, "--report-file", str(report_file))
    assert run.code == 0, run.err
    skipped = {
        r["model"]: r["reason"]
        for r in json.loads(report_file.read_text())["rows"]
        if r["action"] == "skipped"
    }
    for model in (
        "sentry.userrole",
        "sentry.userpermission",
        "sentry.userroleuser",
        "sentry.apitoken",
    ):
        assert skipped[model] == f"Config scope is not imported by `import {scope}`"
    assert skipped["sentry.authenticator"] == f"Global scope is not imported by `import {scope}`"
    # A user option is User-scope data (spec 3.1): imported, and grants nothing.
    assert query(db_dsn, "SELECT key, value FROM sentry_useroption") == [("is_superuser", "true")]
    assert query(db_dsn, "SELECT is_superuser, is_staff, is_managed FROM auth_user") == [
        (False, False, False)
    ]
    for table in (
        "sentry_userrole",
        "sentry_userpermission",
        "sentry_userrole_users",
        "sentry_apitoken",
        "auth_authenticator",
    ):
        assert scalar(db_dsn, f"SELECT count(*) FROM {table}") == 0, table


# ----------------------------------------------------------------------------------------
# Config and Global imports keep the flags (Sentry's rule), a single example each.


def _privileged_export(tmp_path: Path) -> Path:
    rows = [
        user(1, "boss", password=PBKDF2, is_staff=True, is_superuser=True, is_managed=True),
        userpermission(1, 1, "users.admin"),
    ]
    src = tmp_path / "boss.json"
    src.write_text(json.dumps(rows))
    return src


def test_config_import_keeps_flags_but_not_the_password(db_dsn: str, tmp_path: Path) -> None:
    run = import_export(db_dsn, "config", _privileged_export(tmp_path))
    assert run.code == 0, run.err
    ((staff, superuser, managed, unclaimed, password),) = query(
        db_dsn, "SELECT is_staff, is_superuser, is_managed, is_unclaimed, password FROM auth_user"
    )
    assert (staff, superuser, managed) == (True, True, True)
    assert unclaimed is True and password != PBKDF2 and password
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_userpermission") == 1


def test_global_import_keeps_flags_and_password(db_dsn: str, tmp_path: Path) -> None:
    run = import_export(db_dsn, "global", _privileged_export(tmp_path))
    assert run.code == 0, run.err
    assert query(
        db_dsn, "SELECT is_staff, is_superuser, is_managed, is_unclaimed, password FROM auth_user"
    ) == [(True, True, True, False, PBKDF2)]
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_userpermission") == 1
