"""`relocate rollback`: removes what one import inserted, restores what it overwrote."""

from __future__ import annotations

import pytest

from .helpers import (
    import_export,
    load_fixture,
    option,
    query,
    run_cli,
    user,
    write_export,
)

# Import, change, roll back: several imports each; CI runs them.
pytestmark = pytest.mark.slow

TABLES = (
    "auth_user", "sentry_email", "sentry_useremail", "sentry_lostpasswordhash",
    "sentry_option", "sentry_controloption", "sentry_userrole", "sentry_userrole_users",
    "sentry_userpermission", "sentry_organization", "sentry_organizationmember",
    "sentry_organizationslugreservation", "sentry_organizationmapping",
    "sentry_organizationmembermapping", "sentry_project", "sentry_projectkey",
    "sentry_regionimportchunk", "sentry_controlimportchunk", "sentry_controlimportchunkreplica",
)


def snapshot(dsn):
    return {t: query(dsn, f"SELECT * FROM {t} ORDER BY id") for t in TABLES}


def rollback(dsn, import_uuid):
    return run_cli("rollback", "--import-uuid", import_uuid, "--dsn", dsn)


def test_rollback_restores_the_database_before_the_import(db_dsn, fixtures_dir, tmp_path):
    base = write_export(tmp_path / "base.json", load_fixture(fixtures_dir, "fresh-install.json"))
    assert import_export(db_dsn, "global", base).code == 0
    before = snapshot(db_dsn)
    snapshot_24_7 = fixtures_dir / "release-snapshots" / "test_at_24_7_0.json"
    for scope, uuid in (("organizations", "b" * 32), ("config", "c" * 32)):
        run = import_export(db_dsn, scope, snapshot_24_7, "--import-uuid", uuid,
                            "--overwrite-configs")
        assert run.code == 0, run.err
    assert snapshot(db_dsn) != before
    for uuid in ("c" * 32, "b" * 32):
        run = rollback(db_dsn, uuid)
        assert run.code == 0, run.err
        assert "rolled back" in run.err
    assert snapshot(db_dsn) == before
    assert query(db_dsn, "SELECT count(*) FROM relocate_pk_map WHERE import_uuid IN "
                         "(%s, %s)", ("b" * 32, "c" * 32)) == [(0,)]


def test_rollback_restores_overwritten_configs(db_dsn, tmp_path):
    assert import_export(db_dsn, "config", write_export(
        tmp_path / "1.json", [option(1, "mail.from", '"old"')])).code == 0
    run = import_export(db_dsn, "config", write_export(
        tmp_path / "2.json", [option(1, "mail.from", '"new"')]), "--overwrite-configs",
        "--import-uuid", "d" * 32)
    assert run.code == 0
    assert query(db_dsn, "SELECT value FROM sentry_option") == [('"new"',)]
    assert rollback(db_dsn, "d" * 32).code == 0
    assert query(db_dsn, "SELECT value FROM sentry_option") == [('"old"',)]


def test_rollback_refuses_when_later_writes_depend(db_dsn, tmp_path):
    first = write_export(tmp_path / "1.json", [user(1, "owner")])
    assert import_export(db_dsn, "users", first, "--import-uuid", "e" * 32).code == 0
    # A later import merges into that user and hangs its own rows off it.
    later = [user(1, "owner"),
             {"model": "sentry.userpermission", "pk": 1,
              "fields": {"user": 1, "permission": "users.admin"}},
             {"model": "sentry.useroption", "pk": 1,
              "fields": {"user": 1, "project_id": None, "organization_id": None,
                         "key": "language", "value": '"de"'}}]
    second = write_export(tmp_path / "2.json", later)
    run = import_export(db_dsn, "config", second, "--merge-users", "--import-uuid", "f" * 32)
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT count(*) FROM auth_user") == [(1,)]
    before = snapshot(db_dsn)
    # The merged user's permission and option were dropped (Sentry drops them), so make a
    # real dependency: a user option written outside relocate.
    query_id = query(db_dsn, "SELECT id FROM auth_user")[0][0]
    import psycopg

    with psycopg.connect(db_dsn) as conn:
        conn.execute("INSERT INTO sentry_useroption (user_id, key, value) VALUES (%s, 'x', "
                     "'1')", (query_id,))
    run = rollback(db_dsn, "e" * 32)
    assert run.code == 1
    assert "refusing to roll back" in run.err and "sentry_useroption" in run.err
    before["auth_user"] = query(db_dsn, "SELECT * FROM auth_user ORDER BY id")
    assert snapshot(db_dsn) == before  # nothing touched


def test_rollback_of_unknown_import(db_dsn):
    run = rollback(db_dsn, "0" * 32)
    assert run.code == 1
    assert "no import" in run.err
