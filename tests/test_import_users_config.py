"""`relocate import users` and `relocate import config`: Sentry's acceptance behaviours.

Each test names the behaviour number of ../shared/docs/sentry-import-spec.md section 11
that it checks. All run the real pipeline (FnApiRunner) against a real PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from .conftest import TEMPLATE_DB
from .helpers import (
    apitoken,
    chunks,
    count,
    email,
    import_export,
    load_fixture,
    option,
    query,
    relay,
    relayusage,
    scalar,
    user,
    useremail,
    userip,
    useroption,
    userpermission,
    userrole,
    write_export,
)

FOUR_USERS = (
    "user-with-maximum-privileges.json",
    "user-with-minimum-privileges.json",
    "user-with-roles-no-superadmin.json",
    "user-with-superadmin-no-roles.json",
)

# End to end, one import or more each: CI runs them (twice: on PostgreSQL 18 and 15).
pytestmark = [pytest.mark.acceptance, pytest.mark.slow]


@pytest.fixture
def four_users(tmp_path, fixtures_dir):
    return write_export(tmp_path / "four-users.json", load_fixture(fixtures_dir, *FOUR_USERS))


def flags(dsn):
    return query(
        dsn,
        "SELECT count(*) FILTER (WHERE is_staff), count(*) FILTER (WHERE "
        "is_superuser), count(*) FILTER (WHERE is_managed), count(*) FILTER "
        "(WHERE is_unclaimed), count(*) FROM auth_user",
    )[0]


def test_behaviour_1_user_scope_sanitises_four_users(db_dsn, four_users):
    run = import_export(db_dsn, "users", four_users)
    assert run.code == 0, run.err
    staff, superuser, managed, unclaimed, total = flags(db_dsn)
    assert (staff, superuser, managed, unclaimed, total) == (0, 0, 0, 4, 4)
    assert count(db_dsn, "sentry_lostpasswordhash") == 4
    for table in (
        "auth_authenticator",
        "sentry_userpermission",
        "sentry_userrole",
        "sentry_userrole_users",
    ):
        assert count(db_dsn, table) == 0, table
    # No imported password survives: every user got a fresh one nobody knows.
    imported = {
        r["fields"]["password"]
        for r in json.loads(four_users.read_text())
        if r["model"] == "sentry.user"
    }
    for (password,) in query(db_dsn, "SELECT password FROM auth_user"):
        assert password not in imported and password.startswith("!") and len(password) == 41


def test_behaviour_3_config_scope_keeps_admin_flags(db_dsn, four_users):
    run = import_export(db_dsn, "config", four_users)
    assert run.code == 0, run.err
    assert flags(db_dsn) == (2, 2, 1, 4, 4)
    assert count(db_dsn, "sentry_lostpasswordhash") == 4
    assert count(db_dsn, "sentry_userpermission") == 2
    # Two roles named "Super Admin" in the file: the second is the existing one.
    assert count(db_dsn, "sentry_userrole") == 1
    assert count(db_dsn, "sentry_userrole_users") == 2
    assert count(db_dsn, "auth_authenticator") == 0
    role_id = scalar(db_dsn, "SELECT id FROM sentry_userrole")
    assert {r[0] for r in query(db_dsn, "SELECT role_id FROM sentry_userrole_users")} == {role_id}
    assert scalar(db_dsn, "SELECT permissions FROM sentry_userrole") == [
        "broadcasts.admin",
        "users.admin",
        "options.admin",
    ]


def test_behaviour_5_users_sharing_an_email_share_one_email_row(db_dsn, tmp_path):
    rows = [
        user(1, "a", "shared@example.com"),
        user(2, "b", "shared@example.com"),
        user(3, "c", "other@example.com"),
        user(4, "d", "other@example.com"),
        email(1, "shared@example.com"),
        email(2, "other@example.com"),
    ]
    run = import_export(db_dsn, "users", write_export(tmp_path / "e.json", rows))
    assert run.code == 0, run.err
    assert count(db_dsn, "auth_user") == 4
    assert sorted(r[0] for r in query(db_dsn, "SELECT email FROM sentry_email")) == [
        "other@example.com",
        "shared@example.com",
    ]


@pytest.mark.parametrize("scope", ["users", "config"])
def test_behaviour_6_and_14_user_emails_reset_outside_global(db_dsn, tmp_path, scope):
    rows = [
        user(1, "owner", "owner@example.com"),
        useremail(1, 1, "owner@example.com", verified=True),
        useremail(2, 1, "second@example.com", verified=True, validation_hash=""),
        useremail(3, 1, "third@example.com", verified=True),
        email(1, "owner@example.com"),
    ]
    before = datetime.now(timezone.utc)
    run = import_export(db_dsn, scope, write_export(tmp_path / "e.json", rows))
    assert run.code == 0, run.err
    emails = query(
        db_dsn,
        "SELECT email, is_verified, validation_hash, date_hash_added "
        "FROM sentry_useremail ORDER BY email",
    )
    assert [e[0] for e in emails] == [
        "owner@example.com",
        "second@example.com",
        "third@example.com",
    ]
    for _, verified, validation_hash, added in emails:
        assert verified is False
        assert len(validation_hash) == 32 and validation_hash != "mCnWesSVvYQcq7qXQ36AZHwosAd6cghE"
        assert added >= before - timedelta(seconds=5)


def test_behaviour_9_username_collisions_get_suffixes(db_dsn, fixtures_dir, tmp_path):
    src = write_export(
        tmp_path / "min.json", load_fixture(fixtures_dir, "user-with-minimum-privileges.json")
    )
    for _ in range(3):
        run = import_export(db_dsn, "users", src)
        assert run.code == 0, run.err
    names = sorted(r[0] for r in query(db_dsn, "SELECT username FROM auth_user"))
    assert names[0] == "min_user"
    assert len(set(names)) == 3
    for name in names[1:]:
        base, suffix = name.rsplit("-", 1)
        assert base == "min_user" and len(suffix) in (2, 3, 5, 12)
        assert "8" not in suffix


def test_behaviour_10_username_too_long_is_a_validation_error(db_dsn, tmp_path):
    findings = tmp_path / "findings.json"
    src = write_export(tmp_path / "long.json", [user(7, "x" * 129)])
    run = import_export(db_dsn, "users", src, "--findings-file", str(findings))
    assert run.code == 1
    (finding,) = json.loads(findings.read_text())
    assert finding["finding"] == "RpcImportError"
    assert finding["kind"] == "ValidationError"
    assert finding["on"] == {"model": "sentry.user", "ordinal": 1}
    assert finding["left_pk"] == 7
    assert "username" in finding["reason"]
    assert set(finding) == {"finding", "kind", "left_pk", "on", "reason", "right_pk"}
    assert count(db_dsn, "auth_user") == 0  # nothing written at all
    assert "ValidationError" in run.err


def test_behaviour_15_invalid_timezone_is_a_validation_error(db_dsn, tmp_path):
    findings = tmp_path / "findings.json"
    rows = [user(1, "tz"), useroption(5, 1, "timezone", '"Mars/Olympus_Mons"')]
    run = import_export(
        db_dsn, "users", write_export(tmp_path / "tz.json", rows), "--findings-file", str(findings)
    )
    assert run.code == 1
    (finding,) = json.loads(findings.read_text())
    assert finding["kind"] == "ValidationError"
    assert finding["on"]["model"] == "sentry.useroption"
    assert finding["left_pk"] == 5
    assert count(db_dsn, "auth_user") == 0


def test_valid_timezone_option_imports(db_dsn, tmp_path):
    rows = [user(1, "tz"), useroption(5, 1, "timezone", '"Europe/Vienna"')]
    run = import_export(db_dsn, "users", write_export(tmp_path / "tz.json", rows))
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT key, value FROM sentry_useroption") == [
        ("timezone", '"Europe/Vienna"')
    ]


def test_behaviour_16_a_user_gets_one_primary_useremail_and_email(db_dsn, tmp_path):
    run = import_export(
        db_dsn, "users", write_export(tmp_path / "u.json", [user(1, "solo", "solo@example.com")])
    )
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT email FROM sentry_useremail") == [("solo@example.com",)]
    assert query(db_dsn, "SELECT email FROM sentry_email") == [("solo@example.com",)]


@pytest.mark.parametrize("scope", ["users", "config"])
def test_behaviour_20_empty_import_leaves_data_untouched(db_dsn, tmp_path, fixtures_dir, scope):
    src = write_export(tmp_path / "u.json", load_fixture(fixtures_dir, *FOUR_USERS))
    assert import_export(db_dsn, "config", src).code == 0
    before = query(db_dsn, "SELECT id, username, password FROM auth_user ORDER BY id")
    empty = write_export(tmp_path / "empty.json", [])
    run = import_export(db_dsn, scope, empty)
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT id, username, password FROM auth_user ORDER BY id") == before
    assert count(db_dsn, "sentry_userrole") == 1


def _four_users_two_emails():
    return [
        user(1, "user_1", "a@example.com"),
        user(2, "user_2", "b@example.com"),
        user(3, "user_3", "a@example.com"),
        user(4, "user_4", "c@example.com"),
        email(1, "a@example.com"),
        email(2, "b@example.com"),
        email(3, "c@example.com"),
        useremail(1, 1, "a@example.com"),
        useremail(2, 2, "b@example.com"),
        useremail(3, 3, "a@example.com"),
        useremail(4, 4, "c@example.com"),
    ]


def test_behaviour_22_filter_usernames_imports_one_user(db_dsn, tmp_path):
    src = write_export(tmp_path / "f.json", _four_users_two_emails())
    run = import_export(db_dsn, "users", src, "--filter-usernames", "user_2")
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT username FROM auth_user") == [("user_2",)]
    assert query(db_dsn, "SELECT email FROM sentry_useremail") == [("b@example.com",)]
    assert query(db_dsn, "SELECT email FROM sentry_email") == [("b@example.com",)]
    for model in ("sentry.user", "sentry.useremail"):
        (chunk,) = chunks(db_dsn, model)
        assert (chunk["min_ordinal"], chunk["max_ordinal"]) == (1, 1)


def test_behaviour_23_filter_three_of_four_users_with_shared_emails(db_dsn, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("user_1,user_3,user_4")
    src = write_export(tmp_path / "f.json", _four_users_two_emails())
    run = import_export(db_dsn, "users", src, "--filter-usernames-file", str(names))
    assert run.code == 0, run.err
    assert count(db_dsn, "auth_user") == 3
    assert sorted(r[0] for r in query(db_dsn, "SELECT email FROM sentry_email")) == [
        "a@example.com",
        "c@example.com",
    ]


def test_behaviour_24_empty_user_filter_imports_nothing(db_dsn, tmp_path):
    from uuid import uuid4

    from relocate.beam.run import run_import
    from relocate.logic.settings import ImportSettings

    src = write_export(tmp_path / "f.json", _four_users_two_emails())
    settings = ImportSettings(
        scope="users",
        import_uuid=uuid4().hex,
        run_id=uuid4().hex,
        dsn=db_dsn,
        filter_usernames=frozenset(),
    )
    summary = run_import(str(src), settings)
    assert summary.findings == []
    for table in ("auth_user", "sentry_email", "sentry_useremail"):
        assert count(db_dsn, table) == 0
    assert summary.models["sentry.user"].skipped == 4


def test_filter_flags_are_mutually_exclusive(db_dsn, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("a")
    run = import_export(
        db_dsn,
        "users",
        write_export(tmp_path / "x.json", []),
        "--filter-usernames",
        "a",
        "--filter-usernames-file",
        str(names),
    )
    assert run.code == 2
    assert "mutually exclusive" in run.err


def test_behaviour_28_colliding_api_tokens_are_regenerated(db_dsn, tmp_path):
    first = [user(1, "a"), apitoken(1, 1, "tok-a" * 8, "ref-a" * 8, "2030-01-01T00:00:00Z")]
    assert import_export(db_dsn, "config", write_export(tmp_path / "1.json", first)).code == 0
    before = query(db_dsn, "SELECT id, token, refresh_token FROM sentry_apitoken")
    second = [
        user(1, "b"),
        apitoken(1, 1, "tok-a" * 8, "ref-a" * 8, "2030-01-01T00:00:00Z"),
        apitoken(2, 1, "tok-c" * 8, None, None),
    ]
    run = import_export(db_dsn, "config", write_export(tmp_path / "2.json", second))
    assert run.code == 0, run.err
    tokens = query(
        db_dsn, "SELECT id, token, refresh_token, expires_at FROM sentry_apitoken ORDER BY id"
    )
    assert len(tokens) == 3
    assert tokens[0][:3] == before[0]  # the existing token is untouched
    regenerated = tokens[1]
    assert regenerated[1] != "tok-a" * 8 and regenerated[2] != "ref-a" * 8
    assert regenerated[2] is not None
    assert tokens[2][1] == "tok-c" * 8 and tokens[2][2] is None and tokens[2][3] is None


def _config_rows(value: str, pk_offset: int = 0):
    return [
        option(1 + pk_offset, "mail.from", value),
        option(2 + pk_offset, "mail.from", value, model="sentry.controloption"),
        relay(3 + pk_offset, "relay-1", f"key-{value}"),
        relayusage(4 + pk_offset, "relay-1", "1.0.0", f"key-{value}"),
        userrole(5 + pk_offset, "Admins", [f"perm.{value}"]),
    ]


CONFIG_MODELS = (
    "sentry.option",
    "sentry.controloption",
    "sentry.relay",
    "sentry.relayusage",
    "sentry.userrole",
)


def _config_values(dsn):
    return (
        scalar(dsn, "SELECT value FROM sentry_option"),
        scalar(dsn, "SELECT value FROM sentry_controloption"),
        scalar(dsn, "SELECT public_key FROM sentry_relay"),
        scalar(dsn, "SELECT public_key FROM sentry_relayusage"),
        scalar(dsn, "SELECT permissions FROM sentry_userrole"),
    )


def test_behaviour_34_overwrite_configs(db_dsn, tmp_path):
    assert (
        import_export(db_dsn, "config", write_export(tmp_path / "1.json", _config_rows("old"))).code
        == 0
    )
    ids = query(db_dsn, "SELECT id FROM sentry_option")
    run = import_export(
        db_dsn,
        "config",
        write_export(tmp_path / "2.json", _config_rows("new")),
        "--overwrite-configs",
        "--import-uuid",
        "1" * 32,
    )
    assert run.code == 0, run.err
    assert _config_values(db_dsn) == ("new", "new", "key-new", "key-new", ["perm.new"])
    assert query(db_dsn, "SELECT id FROM sentry_option") == ids
    for model in CONFIG_MODELS:
        (chunk,) = [c for c in chunks(db_dsn, model) if c["import_uuid"].hex == "1" * 32]
        assert (
            len(chunk["overwrite_map"]),
            len(chunk["inserted_map"]),
            len(chunk["existing_map"]),
        ) == (1, 0, 0), model


def test_behaviour_35_existing_configs_kept(db_dsn, tmp_path):
    assert (
        import_export(db_dsn, "config", write_export(tmp_path / "1.json", _config_rows("old"))).code
        == 0
    )
    run = import_export(
        db_dsn,
        "config",
        write_export(tmp_path / "2.json", _config_rows("new")),
        "--import-uuid",
        "2" * 32,
    )
    assert run.code == 0, run.err
    assert _config_values(db_dsn) == ("old", "old", "key-old", "key-old", ["perm.old"])
    for model in CONFIG_MODELS:
        (chunk,) = [c for c in chunks(db_dsn, model) if c["import_uuid"].hex == "2" * 32]
        assert (
            len(chunk["existing_map"]),
            len(chunk["inserted_map"]),
            len(chunk["overwrite_map"]),
        ) == (1, 0, 0), model


def _owner_export(address: str, ip: str):
    return [
        user(1, "owner", address),
        email(1, address),
        useremail(1, 1, address),
        userip(1, 1, ip),
        userpermission(1, 1, "users.admin"),
    ]


@pytest.mark.parametrize("scope", ["users", "config"])
def test_behaviour_36_and_40_merge_users(db_dsn, tmp_path, scope):
    assert (
        import_export(
            db_dsn,
            scope,
            write_export(tmp_path / "1.json", _owner_export("existing@example.com", "1.1.1.1")),
        ).code
        == 0
    )
    lph = count(db_dsn, "sentry_lostpasswordhash")
    perms = count(db_dsn, "sentry_userpermission")
    run = import_export(
        db_dsn,
        scope,
        write_export(tmp_path / "2.json", _owner_export("imported@example.com", "2.2.2.2")),
        "--merge-users",
        "--import-uuid",
        "3" * 32,
    )
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT username, email FROM auth_user") == [
        ("owner", "existing@example.com")
    ]
    assert query(db_dsn, "SELECT email FROM sentry_useremail") == [("existing@example.com",)]
    assert count(db_dsn, "sentry_lostpasswordhash") == lph
    assert count(db_dsn, "sentry_userpermission") == perms
    assert sorted(r[0] for r in query(db_dsn, "SELECT email FROM sentry_email")) == [
        "existing@example.com",
        "imported@example.com",
    ]
    (chunk,) = [c for c in chunks(db_dsn, "sentry.user") if c["import_uuid"].hex == "3" * 32]
    assert len(chunk["existing_map"]) == 1 and not chunk["inserted_map"]
    for model in ("sentry.useremail", "sentry.userpermission", "sentry.userip"):
        assert not [c for c in chunks(db_dsn, model) if c["import_uuid"].hex == "3" * 32]


@pytest.mark.parametrize("scope", ["users", "config"])
def test_behaviour_37_and_40_no_merge_renames(db_dsn, tmp_path, scope):
    assert (
        import_export(
            db_dsn,
            scope,
            write_export(tmp_path / "1.json", _owner_export("existing@example.com", "1.1.1.1")),
        ).code
        == 0
    )
    run = import_export(
        db_dsn,
        scope,
        write_export(tmp_path / "2.json", _owner_export("imported@example.com", "2.2.2.2")),
    )
    assert run.code == 0, run.err
    users = query(db_dsn, "SELECT id, username, is_unclaimed FROM auth_user ORDER BY id")
    assert len(users) == 2 and users[0][1] == "owner"
    assert users[1][1].startswith("owner-") and users[1][2] is True
    assert query(
        db_dsn, "SELECT email FROM sentry_useremail WHERE user_id = %s", (users[1][0],)
    ) == [("imported@example.com",)]
    assert (
        scalar(
            db_dsn,
            "SELECT count(*) FROM sentry_lostpasswordhash WHERE user_id = %s",
            (users[1][0],),
        )
        == 1
    )
    expected_perms = 2 if scope == "config" else 0
    assert count(db_dsn, "sentry_userpermission") == expected_perms


@pytest.mark.parametrize("scope", ["users", "config"])
def test_fixture_fresh_install(db_dsn, fixtures_dir, scope):
    run = import_export(db_dsn, scope, fixtures_dir / "fresh-install.json")
    assert run.code == 0, run.err
    assert count(db_dsn, "auth_user") == 2
    assert count(db_dsn, "sentry_email") == 2
    assert count(db_dsn, "sentry_useremail") == 2
    assert count(db_dsn, "sentry_organization") == 0
    expected_options = 4 if scope == "config" else 0
    assert count(db_dsn, "sentry_option") == expected_options
    assert count(db_dsn, "sentry_userrole") == (1 if scope == "config" else 0)


EXPECTED_USER_FIXTURES = {
    # fixture: (users, useremails, userpermissions in config, userroles in config)
    "user-with-maximum-privileges.json": (1, 1, 1, 1),
    "user-with-minimum-privileges.json": (1, 1, 0, 0),
    "user-with-roles-no-superadmin.json": (1, 1, 1, 1),
    "user-with-superadmin-no-roles.json": (1, 1, 0, 0),
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED_USER_FIXTURES))
@pytest.mark.parametrize("scope", ["users", "config"])
def test_fixture_user_with(db_dsn, fixtures_dir, fixture, scope):
    users, useremails, perms, roles = EXPECTED_USER_FIXTURES[fixture]
    run = import_export(db_dsn, scope, fixtures_dir / fixture)
    assert run.code == 0, run.err
    assert count(db_dsn, "auth_user") == users
    assert count(db_dsn, "sentry_useremail") == useremails
    assert count(db_dsn, "sentry_userpermission") == (perms if scope == "config" else 0)
    assert count(db_dsn, "sentry_userrole") == (roles if scope == "config" else 0)
    assert count(db_dsn, "sentry_userip") == 0  # Global scope only
    assert count(db_dsn, "auth_authenticator") == 0


@pytest.mark.parametrize("scope", ["users", "config"])
def test_fixture_47_invalid_user_is_a_validation_error(db_dsn, fixtures_dir, scope, tmp_path):
    """Behaviour 49: the unknown field is ignored; the missing username fails Sentry's user
    serializer ("This field may not be blank."), a ValidationError, nothing written."""
    findings = tmp_path / "findings.json"
    run = import_export(
        db_dsn, scope, fixtures_dir / "invalid-user.json", "--findings-file", str(findings)
    )
    assert run.code == 1
    (finding,) = json.loads(findings.read_text())
    assert (finding["kind"], finding["on"]["model"]) == ("ValidationError", "sentry.user")
    assert "This field may not be blank." in finding["reason"]
    assert count(db_dsn, "auth_user") == 0


@pytest.mark.parametrize("scope", ["users", "config"])
def test_fixture_50_app_user_with_empty_email(db_dsn, fixtures_dir, scope):
    run = import_export(db_dsn, scope, fixtures_dir / "app-user-with-empty-email.json")
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT email FROM auth_user") == [("",)]
    assert query(db_dsn, "SELECT email FROM sentry_email") == [("",)]
    assert query(db_dsn, "SELECT email FROM sentry_useremail") == [("",)]


def test_fixture_51_user_pk_mapping(db_dsn, fixtures_dir):
    run = import_export(db_dsn, "config", fixtures_dir / "user-pk-mapping.json")
    assert run.code == 0, run.err
    (user_id,) = query(db_dsn, "SELECT id FROM auth_user")[0]
    role_id = scalar(db_dsn, "SELECT id FROM sentry_userrole")
    assert query(db_dsn, "SELECT user_id, role_id FROM sentry_userrole_users") == [
        (user_id, role_id)
    ]
    assert query(db_dsn, "SELECT user_id FROM sentry_useremail") == [(user_id,)]
    assert query(
        db_dsn,
        "SELECT model, old_pk, new_pk FROM relocate_pk_map "
        "WHERE model IN ('sentry.user', 'sentry.userrole') ORDER BY model",
    ) == [("sentry.user", 12, user_id), ("sentry.userrole", 78, role_id)]


@pytest.mark.parametrize(
    "fixture",
    [
        "datetime-millis.json",
        "datetime-with-unzeroed-millis.json",
        "datetime-with-zeroed-millis.json",
        "single-option.json",
    ],
)
def test_fixture_52_datetimes_and_sites(db_dsn, fixtures_dir, fixture, tmp_path):
    report = tmp_path / "report.json"
    run = import_export(db_dsn, "config", fixtures_dir / fixture, "--report-file", str(report))
    assert run.code == 0, run.err
    rows = json.loads((fixtures_dir / fixture).read_text())
    options = [r for r in rows if r["model"] == "sentry.option"]
    assert count(db_dsn, "sentry_option") == len(options)
    skipped = json.loads(report.read_text())["rows"]
    assert [(r["model"], r["reason"]) for r in skipped] == [
        (r["model"], "model of the excluded app `sites`")
        for r in rows
        if r["model"] == "sites.site"
    ]


def test_shuffled_export_imports_to_the_same_result(db_dsn, pg_server, fixtures_dir, tmp_path):
    import psycopg

    rows = load_fixture(fixtures_dir, "fresh-install.json", "user-pk-mapping.json")
    ordered = write_export(tmp_path / "ordered.json", rows)
    shuffled = write_export(tmp_path / "shuffled.json", rows, shuffle=7)
    assert import_export(db_dsn, "config", ordered).code == 0
    other = db_dsn.replace("dbname=", "dbname=x")  # a second fresh database
    name = other.split("dbname=")[1].split()[0]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        template = db_dsn.split("dbname=")[1].split()[0]
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    try:
        assert import_export(other, "config", shuffled).code == 0

        def canonical(dsn):
            return (
                query(dsn, "SELECT username, email, is_staff FROM auth_user ORDER BY username"),
                query(
                    dsn,
                    "SELECT u.username, e.email, e.is_verified FROM sentry_useremail e "
                    "JOIN auth_user u ON u.id = e.user_id ORDER BY 1, 2",
                ),
                query(dsn, "SELECT key, value FROM sentry_option ORDER BY key"),
                query(
                    dsn,
                    "SELECT u.username, r.name FROM sentry_userrole_users x JOIN "
                    "auth_user u ON u.id = x.user_id JOIN sentry_userrole r "
                    "ON r.id = x.role_id ORDER BY 1",
                ),
                query(dsn, "SELECT email FROM sentry_email ORDER BY 1"),
            )

        assert canonical(db_dsn) == canonical(other)
        del template
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_child_before_parent_is_not_lost(db_dsn, tmp_path):
    rows = [useremail(1, 9, "late@example.com"), userpermission(1, 9), user(9, "late")]
    run = import_export(db_dsn, "config", write_export(tmp_path / "c.json", rows))
    assert run.code == 0, run.err
    user_id = scalar(db_dsn, "SELECT id FROM auth_user")
    assert query(db_dsn, "SELECT user_id FROM sentry_userpermission") == [(user_id,)]


def test_reimport_with_same_uuid_changes_nothing(db_dsn, fixtures_dir):
    src = fixtures_dir / "fresh-install.json"
    uuid_flag = ("--import-uuid", "a" * 32)
    assert import_export(db_dsn, "config", src, *uuid_flag).code == 0

    def snapshot():
        return [
            query(db_dsn, f"SELECT * FROM {t} ORDER BY id")
            for t in (
                "auth_user",
                "sentry_email",
                "sentry_useremail",
                "sentry_option",
                "sentry_lostpasswordhash",
                "sentry_userrole",
                "sentry_userrole_users",
                "sentry_controlimportchunk",
                "sentry_regionimportchunk",
            )
        ]

    before = snapshot()
    run = import_export(db_dsn, "config", src, *uuid_flag)
    assert run.code == 0, run.err
    assert snapshot() == before


def test_bundle_repeat_inserts_nothing_twice(db_dsn, fixtures_dir, tmp_path):
    src = write_export(tmp_path / "u.json", load_fixture(fixtures_dir, *FOUR_USERS))
    run = import_export(db_dsn, "config", src, "--direct_runner_bundle_repeat=2")
    assert run.code == 0, run.err
    assert count(db_dsn, "auth_user") == 4
    assert count(db_dsn, "sentry_lostpasswordhash") == 4
    assert count(db_dsn, "sentry_useremail") == 4
    assert count(db_dsn, "sentry_userrole_users") == 2
    assert scalar(db_dsn, "SELECT count(*) FROM relocate_pk_map") == scalar(
        db_dsn, "SELECT count(DISTINCT (model, old_pk)) FROM relocate_pk_map"
    )


def test_sequences_end_past_highest_id(db_dsn, fixtures_dir):
    assert import_export(db_dsn, "config", fixtures_dir / "fresh-install.json").code == 0
    for table in ("auth_user", "sentry_option", "sentry_useremail", "sentry_email"):
        highest = scalar(db_dsn, f"SELECT max(id) FROM {table}")
        seq = scalar(db_dsn, "SELECT pg_get_serial_sequence(%s, 'id')", (table,))
        last = scalar(db_dsn, f"SELECT last_value FROM {seq}")
        assert last >= highest, table


def test_summary_and_progress_output(db_dsn, fixtures_dir):
    run = import_export(db_dsn, "config", fixtures_dir / "fresh-install.json")
    assert run.code == 0
    assert "Import UUID:" in run.err
    lines = [line.split() for line in run.err.splitlines()]
    header = next(line for line in lines if line[:1] == ["model"])
    assert header == ["model", "read", "inserted", "existing", "overwritten", "skipped", "dropped"]
    user_line = next(line for line in lines if line[:1] == ["sentry.user"])
    assert user_line[1:] == ["2", "2", "0", "0", "0", "0"]
    assert "skipped sentry.organization: Organization scope is not imported" in run.err


def test_silent_prints_nothing_on_success(db_dsn, fixtures_dir):
    run = import_export(db_dsn, "config", fixtures_dir / "single-option.json", "--silent")
    assert run.code == 0
    assert run.err == ""


def test_findings_file_is_empty_list_on_success(db_dsn, fixtures_dir, tmp_path):
    findings = tmp_path / "f.json"
    run = import_export(
        db_dsn, "users", fixtures_dir / "fresh-install.json", "--findings-file", str(findings)
    )
    assert run.code == 0
    assert json.loads(findings.read_text()) == []


def test_multi_processing_runner(db_dsn, fixtures_dir, tmp_path):
    src = write_export(tmp_path / "u.json", load_fixture(fixtures_dir, *FOUR_USERS))
    run = import_export(
        db_dsn,
        "config",
        src,
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    )
    assert run.code == 0, run.err
    assert flags(db_dsn) == (2, 2, 1, 4, 4)
    assert count(db_dsn, "sentry_userrole_users") == 2
