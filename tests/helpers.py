"""Test helpers: run imports through the real CLI, build small exports, query the target."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from relocate.cli.main import main

TS = "2023-06-22T22:59:55.488Z"
IMPORTED_PASSWORD = "pbkdf2_sha256$150000$iEvdIknqYjTr$+QsGn0tfIJ1FZLxQI37mVU1gL2KbL/wqjMtG/dFhsMA="


@dataclass
class ImportRun:
    code: int
    out: str
    err: str


def run_cli(*argv: str) -> ImportRun:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return ImportRun(code, out.getvalue(), err.getvalue())


#: Beam options that run an import in two worker processes of the local runner.
TWO_WORKERS = (
    "--runner=DirectRunner",
    "--direct_running_mode=multi_processing",
    "--direct_num_workers=2",
)


def import_export(dsn: str, scope: str, src: str | Path, *flags: str) -> ImportRun:
    """Runs ``relocate import <scope> SRC --dsn DSN --no-prompt [flags]``."""
    return run_cli("import", scope, str(src), "--dsn", dsn, "--no-prompt", *flags)


def query(dsn: str, sql: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(dsn: str, sql: str, params: Any = None) -> Any:
    return query(dsn, sql, params)[0][0]


def count(dsn: str, table: str) -> int:
    return scalar(dsn, f"SELECT count(*) FROM {table}")  # test-owned table names


def write_export(path: Path, rows: list[dict], shuffle: int | None = None) -> Path:
    rows = list(rows)
    if shuffle is not None:
        random.Random(shuffle).shuffle(rows)
    path.write_text(json.dumps(rows, indent=2))
    return path


def load_fixture(fixtures_dir: Path, *names: str) -> list[dict]:
    rows: list[dict] = []
    for name in names:
        rows += json.loads((fixtures_dir / name).read_text())
    return rows


def write_rsa_key(directory: Path) -> tuple[Path, bytes]:
    """A fresh 2048-bit RSA key: its private PEM written to ``directory/private.pem``,
    and its public PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / "private.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def row(model: str, pk: int, **fields: Any) -> dict:
    return {"model": model, "pk": pk, "fields": fields}


def member(
    pk: int, org_pk: int, user_pk: int | None, email: str | None = None, **fields: Any
) -> dict:
    """A ``sentry.organizationmember`` row; ``fields`` override the defaults."""
    base = dict(
        organization=org_pk,
        user_id=user_pk,
        email=email,
        role="member",
        flags="0",
        token=None,
        date_added=TS,
        token_expires_at=None,
        has_global_access=True,
        inviter_id=None,
        invite_status=0,
        type=50,
        user_is_active=True,
        user_email=None,
    )
    return row("sentry.organizationmember", pk, **{**base, **fields})


def user(pk: int, username: str, email: str | None = None, **fields: Any) -> dict:
    base = {
        "password": IMPORTED_PASSWORD,
        "last_login": None,
        "username": username,
        "name": "",
        "email": email if email is not None else f"{username}@example.com",
        "is_staff": False,
        "is_active": True,
        "is_superuser": False,
        "is_managed": False,
        "is_sentry_app": None,
        "is_password_expired": False,
        "is_unclaimed": False,
        "last_password_change": TS,
        "flags": "0",
        "session_nonce": None,
        "date_joined": TS,
        "last_active": TS,
        "avatar_type": 0,
        "avatar_url": None,
    }
    base.update(fields)
    return row("sentry.user", pk, **base)


def email(pk: int, address: str) -> dict:
    return row("sentry.email", pk, email=address, date_added=TS)


def useremail(
    pk: int,
    user_pk: int,
    address: str,
    verified: bool = True,
    validation_hash: str = "mCnWesSVvYQcq7qXQ36AZHwosAd6cghE",
) -> dict:
    return row(
        "sentry.useremail",
        pk,
        user=user_pk,
        email=address,
        validation_hash=validation_hash,
        date_hash_added=TS,
        is_verified=verified,
    )


def userip(pk: int, user_pk: int, ip: str) -> dict:
    return row(
        "sentry.userip",
        pk,
        user=user_pk,
        ip_address=ip,
        country_code=None,
        region_code=None,
        first_seen="2012-04-05T03:29:45.000Z",
        last_seen="2012-04-05T03:29:45.000Z",
    )


def useroption(pk: int, user_pk: int, key: str, value: str) -> dict:
    return row(
        "sentry.useroption",
        pk,
        user=user_pk,
        project_id=None,
        organization_id=None,
        key=key,
        value=value,
    )


def userpermission(pk: int, user_pk: int, permission: str = "users.admin") -> dict:
    return row("sentry.userpermission", pk, user=user_pk, permission=permission)


def userrole(pk: int, name: str, permissions: list[str] | str) -> dict:
    return row(
        "sentry.userrole", pk, date_updated=TS, date_added=TS, name=name, permissions=permissions
    )


def userroleuser(pk: int, user_pk: int, role_pk: int) -> dict:
    return row(
        "sentry.userroleuser", pk, date_updated=TS, date_added=TS, user=user_pk, role=role_pk
    )


def option(pk: int, key: str, value: Any, model: str = "sentry.option") -> dict:
    return row(model, pk, key=key, last_updated=TS, last_updated_by="unknown", value=value)


def relay(pk: int, relay_id: str, public_key: str) -> dict:
    return row(
        "sentry.relay",
        pk,
        relay_id=relay_id,
        public_key=public_key,
        first_seen=TS,
        last_seen=TS,
        is_internal=True,
    )


def relayusage(pk: int, relay_id: str, version: str, public_key: str) -> dict:
    return row(
        "sentry.relayusage",
        pk,
        relay_id=relay_id,
        version=version,
        first_seen=TS,
        last_seen=TS,
        public_key=public_key,
    )


def apitoken(
    pk: int,
    user_pk: int,
    token: str,
    refresh_token: str | None = None,
    expires_at: str | None = None,
    application: int | None = None,
) -> dict:
    return row(
        "sentry.apitoken",
        pk,
        scopes="0",
        scope_list=["org:read"],
        application=application,
        user=user_pk,
        scoping_organization_id=None,
        name=None,
        token=token,
        hashed_token=None,
        token_type=None,
        token_last_characters=token[-4:],
        refresh_token=refresh_token,
        hashed_refresh_token=None,
        expires_at=expires_at,
        date_added=TS,
    )


def chunks(dsn: str, model: str) -> list[dict]:
    """Import-chunk records of a model (region or control), as dicts."""
    out = []
    for table in ("sentry_regionimportchunk", "sentry_controlimportchunk"):
        for r in query(
            dsn,
            f"SELECT import_uuid, min_ordinal, max_ordinal, inserted_map, existing_map, "
            f"overwrite_map, inserted_identifiers FROM {table} WHERE model = %s "
            f"ORDER BY min_ordinal",
            (model,),
        ):
            out.append(
                dict(
                    zip(
                        (
                            "import_uuid",
                            "min_ordinal",
                            "max_ordinal",
                            "inserted_map",
                            "existing_map",
                            "overwrite_map",
                            "inserted_identifiers",
                        ),
                        r,
                        strict=True,
                    )
                )
            )
    return out


def project_name_taken(dsn: str) -> None:
    """A unique index on project names, and a project already named ``api`` in another
    organization: a constraint the export cannot be checked against before the writes,
    so the stage of projects fails at write time."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE UNIQUE INDEX project_name_everywhere ON sentry_project (name)")
        conn.execute(
            "INSERT INTO sentry_organization (id, name, slug, status, date_added, default_role,"
            " flags, is_test) VALUES (900, 'other', 'other', 0, now(), 'member', 0, false)"
        )
        conn.execute(
            "INSERT INTO sentry_project (id, slug, name, organization_id, public, date_added,"
            " status, flags) VALUES (900, 'api', 'api', 900, false, now(), 0, 0)"
        )
