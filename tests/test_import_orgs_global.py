"""`relocate import organizations` and `relocate import global`: Sentry's acceptance behaviours.

Each test names the behaviour number of ../shared/docs/sentry-import-spec.md section 11.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from relocate.schemas.registry import Registry

from .exhaustive import NEVER_IMPORTED, exhaustive_rows
from .helpers import (
    chunks,
    count,
    email,
    import_export,
    load_fixture,
    query,
    row,
    run_cli,
    scalar,
    user,
    useremail,
    userip,
    write_export,
)

TS = "2023-06-22T22:59:55.488Z"
FOUR_USERS = (
    "user-with-maximum-privileges.json",
    "user-with-minimum-privileges.json",
    "user-with-roles-no-superadmin.json",
    "user-with-superadmin-no-roles.json",
)

# End to end, one import or more each: CI runs them (twice: on PostgreSQL 18 and 15).
pytestmark = [pytest.mark.acceptance, pytest.mark.slow]


def org(pk, slug, name=None, status=0):
    return row("sentry.organization", pk, name=name or slug, slug=slug, status=status,
               date_added=TS, default_role="member", flags="1", is_test=False)


def member(pk, org_pk, user_pk=None, inviter=None, role="member", email_=None):
    return row("sentry.organizationmember", pk, organization=org_pk, user_id=user_pk,
               email=email_, role=role, flags="0", token=None, date_added=TS,
               token_expires_at=None, has_global_access=True, inviter_id=inviter,
               invite_status=0, type=50, user_is_active=True, user_email=None)


def project(pk, org_pk, slug):
    return row("sentry.project", pk, slug=slug, name=slug, organization=org_pk, public=False,
               date_added=TS, status=0, first_event=None, flags="10", platform=None,
               forced_color=None, template=None)


def projectkey(pk, project_pk, public, secret):
    return row("sentry.projectkey", pk, project=project_pk, label="Default", public_key=public,
               secret_key=secret, roles="1", status=0, date_added=TS, rate_limit_count=None,
               rate_limit_window=None, data={}, use_case="user")


def projectoption(pk, project_pk, key, value='"1"'):
    return row("sentry.projectoption", pk, project=project_pk, key=key, value=value)


def orgauthtoken(pk, org_pk, hashed, user_pk=None):
    return row("sentry.orgauthtoken", pk, organization_id=org_pk, token_hashed=hashed,
               token_last_characters="xyz1", name=f"token {pk}", scope_list=["org:ci"],
               created_by=user_pk, date_added=TS, date_last_used=None,
               project_last_used_id=None, date_deactivated=None)


def monitor(pk, org_pk, project_pk, guid, slug="m"):
    return row("sentry.monitor", pk, organization_id=org_pk, project_id=project_pk, guid=guid,
               slug=slug, name="", status=0, type=3, config={"schedule": "* * * * *"},
               date_added=TS, is_muted=False, owner_user_id=None, owner_team_id=None)


def team(pk, org_pk, slug):
    return row("sentry.team", pk, organization=org_pk, slug=slug, name=slug, status=0,
               date_added=TS)


# ------------------------------------------------------------------------------------------


def test_behaviour_2_organization_scope_sanitises_users(db_dsn, tmp_path, fixtures_dir):
    src = write_export(tmp_path / "u.json", load_fixture(fixtures_dir, *FOUR_USERS))
    run = import_export(db_dsn, "organizations", src)
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT count(*) FILTER (WHERE is_staff OR is_superuser OR is_managed),"
                         " count(*) FILTER (WHERE is_unclaimed), count(*) FROM auth_user") == [
        (0, 4, 4)]
    assert count(db_dsn, "sentry_lostpasswordhash") == 4


def test_behaviour_4_global_scope_keeps_everything(db_dsn, tmp_path, fixtures_dir):
    rows = load_fixture(fixtures_dir, *FOUR_USERS)
    run = import_export(db_dsn, "global", write_export(tmp_path / "u.json", rows))
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT count(*) FILTER (WHERE is_staff), count(*) FILTER (WHERE "
                         "is_superuser), count(*) FILTER (WHERE is_managed), count(*) FILTER "
                         "(WHERE is_unclaimed) FROM auth_user") == [(2, 2, 1, 0)]
    assert count(db_dsn, "sentry_lostpasswordhash") == 0
    assert count(db_dsn, "auth_authenticator") == 4
    passwords = {r["fields"]["password"] for r in rows if r["model"] == "sentry.user"}
    assert {r[0] for r in query(db_dsn, "SELECT password FROM auth_user")} == passwords
    assert query(db_dsn, "SELECT DISTINCT is_verified, validation_hash FROM sentry_useremail") == [
        (True, "mCnWesSVvYQcq7qXQ36AZHwosAd6cghE")]


def test_behaviour_7_colliding_org_slug_gets_a_suffix(db_dsn, tmp_path):
    first = write_export(tmp_path / "1.json", [org(1, "some-org")])
    assert import_export(db_dsn, "organizations", first).code == 0
    run = import_export(db_dsn, "organizations", first, "--import-uuid", "7" * 32)
    assert run.code == 0, run.err
    slugs = [r[0] for r in query(db_dsn, "SELECT slug FROM sentry_organization ORDER BY id")]
    assert slugs[0] == "some-org" and slugs[1].startswith("some-org-")
    (chunk,) = [c for c in chunks(db_dsn, "sentry.organization")
                if c["import_uuid"].hex == "7" * 32]
    assert list(chunk["inserted_identifiers"].values()) == [slugs[1]]
    reservations = query(db_dsn, "SELECT organization_id, slug, reservation_type, user_id "
                                 "FROM sentry_organizationslugreservation ORDER BY id")
    mappings = query(db_dsn, "SELECT organization_id, slug FROM sentry_organizationmapping "
                             "ORDER BY id")
    orgs = query(db_dsn, "SELECT id, slug FROM sentry_organization ORDER BY id")
    assert [(o, s) for o, s, _, _ in reservations] == orgs == mappings
    assert {(t, u) for _, _, t, u in reservations} == {(0, -1)}


@pytest.mark.parametrize("scope", ["organizations", "global"])
def test_behaviour_17_org_with_members_projects_keys_options(db_dsn, tmp_path, scope):
    rows = [
        user(1, "owner"), user(2, "member"), user(3, "other"),
        org(10, "acme"),
        member(1, 10, 1, role="owner"), member(2, 10, 2, inviter=1), member(3, 10, 3, inviter=1),
        project(20, 10, "web"), project(21, 10, "api"),
        projectkey(1, 20, "a" * 32, "b" * 32), projectkey(2, 21, "c" * 32, "d" * 32),
        *[projectoption(i, 20 + i % 2, f"key.{i}") for i in range(6)],
    ]
    run = import_export(db_dsn, scope, write_export(tmp_path / "o.json", rows))
    assert run.code == 0, run.err
    org_id = scalar(db_dsn, "SELECT id FROM sentry_organization")
    assert count(db_dsn, "sentry_organizationmember") == 3
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_project WHERE organization_id = %s",
                  (org_id,)) == 2
    assert count(db_dsn, "sentry_projectkey") == 2
    # Six imported options, and the three each new project's receivers write (issue 13.12).
    assert count(db_dsn, "sentry_projectoptions") == 6 + 2 * 3
    assert query(db_dsn, "SELECT organization_id, reservation_type FROM "
                         "sentry_organizationslugreservation") == [(org_id, 0)]
    assert query(db_dsn, "SELECT organization_id, slug FROM sentry_organizationmapping") == [
        (org_id, "acme")]
    mappings = query(db_dsn, "SELECT m.organizationmember_id, m.user_id, m.role FROM "
                             "sentry_organizationmembermapping m ORDER BY 1")
    members = query(db_dsn, "SELECT id, user_id, role FROM sentry_organizationmember ORDER BY 1")
    assert mappings == members
    # Foreign keys point at the new rows.
    assert query(db_dsn, "SELECT count(*) FROM sentry_projectkey k JOIN sentry_project p ON "
                         "p.id = k.project_id WHERE p.organization_id = %s", (org_id,)) == [(2,)]


@pytest.fixture
def geoip_db(tmp_path):
    """A real MaxMind-format database, written with mmdb-writer."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=4, database_type="GeoIP2-City")
    writer.insert_network(IPSet(["8.8.8.0/24"]), {
        "country": {"iso_code": "US"}, "subdivisions": [{"iso_code": "CA"}]})
    writer.insert_network(IPSet(["81.2.69.0/24"]), {
        "country": {"iso_code": "GB"}, "subdivisions": [{"iso_code": "ENG"}]})
    path = tmp_path / "geo.mmdb"
    writer.to_db_file(str(path))
    return path


def test_behaviour_11_and_12_user_ips_geo_and_collapse(db_dsn, tmp_path, geoip_db):
    rows = [user(1, "ip"), userip(1, 1, "8.8.8.8"), userip(2, 1, "8.8.8.8"),
            userip(3, 1, "81.2.69.160"), userip(4, 1, "10.0.0.1")]
    run = import_export(db_dsn, "global", write_export(tmp_path / "ip.json", rows),
                        "--geoip-db", str(geoip_db))
    assert run.code == 0, run.err
    ips = query(db_dsn, "SELECT host(ip_address), country_code, region_code, first_seen, "
                        "last_seen FROM sentry_userip ORDER BY 1")
    assert [i[:3] for i in ips] == [("10.0.0.1", None, None), ("8.8.8.8", "US", "CA"),
                                    ("81.2.69.160", "GB", "ENG")]
    kept = datetime(2012, 4, 5, 3, 29, 45, tzinfo=timezone.utc)
    assert {(i[3], i[4]) for i in ips} == {(kept, kept)}  # Global keeps the times
    new_pks = query(db_dsn, "SELECT old_pk, new_pk FROM relocate_pk_map "
                            "WHERE model = 'sentry.userip' ORDER BY old_pk")
    assert new_pks[0][1] == new_pks[1][1]  # two rows for one (user, ip) became one


def test_behaviour_11_without_geoip_codes_are_null(db_dsn, tmp_path):
    rows = [user(1, "ip"), {**userip(1, 1, "8.8.8.8")}]
    rows[1]["fields"]["country_code"] = "XX"
    run = import_export(db_dsn, "global", write_export(tmp_path / "ip.json", rows))
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT country_code, region_code FROM sentry_userip") == [(None, None)]


def test_behaviour_13_invalid_ip_is_a_validation_error(db_dsn, tmp_path):
    findings = tmp_path / "f.json"
    rows = [user(1, "ip"), userip(9, 1, "999.1.1.1")]
    run = import_export(db_dsn, "global", write_export(tmp_path / "ip.json", rows),
                        "--findings-file", str(findings))
    assert run.code == 1
    (finding,) = json.loads(findings.read_text())
    assert finding["kind"] == "ValidationError"
    assert finding["on"] == {"model": "sentry.userip", "ordinal": 1}
    assert finding["left_pk"] == 9
    assert count(db_dsn, "auth_user") == 0


@pytest.mark.parametrize("scope", ["users", "organizations", "config", "global"])
def test_behaviour_18_each_scope_imports_exactly_its_models(db_dsn, tmp_path, scope):
    from relocate.io.export_reader import Row
    from relocate.logic.admission import row_scope
    from relocate.schemas.registry import IMPORT_SCOPES

    rows = exhaustive_rows(minimal=True)
    run = import_export(db_dsn, scope, write_export(tmp_path / "all.json", rows),
                        "--import-uuid", "18" * 16)
    assert run.code == 0, run.err
    registry = Registry.load()
    for r in rows:
        model = registry[r["model"]]
        scope_of_row = row_scope(model, r["fields"])
        expected = scope_of_row in IMPORT_SCOPES[scope] and model.name not in NEVER_IMPORTED
        n = count(db_dsn, model.table)
        if scope == "users" and model.name == "sentry.email" or model.name == "sentry.useremail":
            n = 1 if n else 0  # the user's primary Email/UserEmail is created with the user
        assert (n > 0) == expected, (scope, model.name, n)
        model_chunks = chunks(db_dsn, model.name)
        assert bool(model_chunks) == expected, model.name
        assert {c["import_uuid"].hex for c in model_chunks} <= {"18" * 16}
        if expected and model.is_control:
            replicas = query(db_dsn, "SELECT count(*) FROM sentry_controlimportchunkreplica "
                                     "WHERE model = %s", (model.name,))
            assert replicas == [(len(model_chunks),)]
    del Row


def test_all_95_models_import_with_foreign_keys_to_the_new_rows(db_dsn, tmp_path):
    """Every relocatable model imports (but the one Sentry's rules always drop), and every
    foreign key of every row points at the row imported for its target."""
    from psycopg import sql

    rows = exhaustive_rows(minimal=False)
    run = import_export(db_dsn, "global", write_export(tmp_path / "all.json", rows))
    assert run.code == 0, run.err
    registry = Registry.load()
    ledger = {(m, o): n for m, o, n in query(
        db_dsn, "SELECT model, old_pk, new_pk FROM relocate_pk_map")}
    import psycopg

    checked = 0
    with psycopg.connect(db_dsn) as conn:
        for r in rows:
            model = registry[r["model"]]
            n = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(model.table))).fetchone()[0]
            if model.name in NEVER_IMPORTED:
                assert n == 0
                continue
            assert n >= 1, model.name
            new_pk = ledger[(model.name, r["pk"])]
            for fk in model.foreign_keys:
                source = r["fields"].get(fk.field)
                if source is None or fk.excluded:
                    continue
                value = conn.execute(
                    sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
                        sql.Identifier(fk.column), sql.Identifier(model.table)), (new_pk,)
                ).fetchone()[0]
                assert value == ledger[(fk.target, source)], (model.name, fk.field)
                checked += 1
    assert len(rows) == 95 and checked > 100


def test_behaviour_19_global_import_of_empty_file_wipes(db_dsn, tmp_path, fixtures_dir):
    assert import_export(db_dsn, "global", fixtures_dir / "fresh-install.json").code == 0
    assert count(db_dsn, "sentry_organization") == 1
    run = import_export(db_dsn, "global", write_export(tmp_path / "empty.json", []))
    assert run.code == 0, run.err
    for table in ("auth_user", "sentry_organization", "sentry_team", "sentry_project",
                  "sentry_email", "sentry_option", "sentry_organizationslugreservation"):
        assert count(db_dsn, table) == 0, table
    # Sequences restart: the next import gets id 1 again.
    assert import_export(db_dsn, "global", fixtures_dir / "fresh-install.json").code == 0
    assert scalar(db_dsn, "SELECT min(id) FROM auth_user") == 1


def test_behaviour_20_org_import_of_empty_file_touches_nothing(db_dsn, tmp_path, fixtures_dir):
    assert import_export(db_dsn, "global", fixtures_dir / "fresh-install.json").code == 0
    before = query(db_dsn, "SELECT id, slug FROM sentry_organization")
    run = import_export(db_dsn, "organizations", write_export(tmp_path / "e.json", []))
    assert run.code == 0
    assert query(db_dsn, "SELECT id, slug FROM sentry_organization") == before


def _three_orgs():
    users = [user(i, f"user-{i}") for i in range(1, 9)]
    orgs = [org(100, "org-a"), org(200, "org-b"), org(300, "org-c")]
    members = [
        member(1, 100, 1, role="owner"), member(2, 100, 2, inviter=1),
        member(3, 200, 3, role="owner"), member(4, 200, 4, inviter=3), member(5, 200, 5, inviter=1),
        member(6, 200, 6, inviter=3),
        member(7, 300, 7, role="owner"), member(8, 300, 8, inviter=7),
        member(9, 300, None, inviter=7, email_="invitee@example.com"),
    ]
    tokens = [orgauthtoken(1, 100, "hash-a"), orgauthtoken(2, 200, "hash-b"),
              orgauthtoken(3, 300, "hash-c")]
    # Members come before their users and orgs in the file: order must not matter.
    return members + tokens + orgs + users


def test_behaviour_25_org_filter_one_org(db_dsn, tmp_path):
    src = write_export(tmp_path / "o.json", _three_orgs())
    run = import_export(db_dsn, "organizations", src, "--filter-org-slugs", "org-b")
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT slug FROM sentry_organization") == [("org-b",)]
    assert count(db_dsn, "sentry_orgauthtoken") == 1
    assert sorted(r[0] for r in query(db_dsn, "SELECT username FROM auth_user")) == [
        "user-3", "user-4", "user-5", "user-6"]
    # user-1 invited user-5 but is not imported: the member stays, inviter nulled (42).
    assert query(db_dsn, "SELECT u.username, m.inviter_id IS NULL FROM "
                         "sentry_organizationmember m JOIN auth_user u ON u.id = m.user_id "
                         "ORDER BY 1") == [("user-3", True), ("user-4", False),
                                           ("user-5", True), ("user-6", False)]
    assert sorted(r[0] for r in query(db_dsn, "SELECT email FROM sentry_email")) == [
        f"user-{i}@example.com" for i in (3, 4, 5, 6)]


def test_behaviour_26_org_filter_two_orgs(db_dsn, tmp_path):
    src = write_export(tmp_path / "o.json", _three_orgs())
    run = import_export(db_dsn, "organizations", src, "--filter-org-slugs", "org-a,org-c")
    assert run.code == 0, run.err
    assert sorted(r[0] for r in query(db_dsn, "SELECT slug FROM sentry_organization")) == [
        "org-a", "org-c"]
    (org_chunk,) = chunks(db_dsn, "sentry.organization")
    assert (org_chunk["min_ordinal"], org_chunk["max_ordinal"]) == (1, 2)
    assert count(db_dsn, "sentry_orgauthtoken") == 2
    assert len(chunks(db_dsn, "sentry.orgauthtoken")) == 1
    assert count(db_dsn, "auth_user") == 4  # the invitee of org-c has no user
    assert count(db_dsn, "sentry_organizationmember") == 5


def test_behaviour_27_empty_org_filter_imports_nothing(db_dsn, tmp_path):
    from uuid import uuid4

    from relocate.beam.run import run_import
    from relocate.logic.settings import ImportSettings

    src = write_export(tmp_path / "o.json", _three_orgs())
    settings = ImportSettings(scope="organizations", import_uuid=uuid4().hex,
                              run_id=uuid4().hex, dsn=db_dsn, filter_org_slugs=frozenset())
    summary = run_import(str(src), settings)
    assert summary.findings == []
    for table in ("sentry_organization", "sentry_orgauthtoken", "auth_user"):
        assert count(db_dsn, table) == 0


def test_behaviour_29_30_31_colliding_keys_tokens_guids(db_dsn, tmp_path):
    guid = "7fc72b8e-3f87-43c9-9e6d-85d7f61d4a37"
    rows = [org(1, "o"), project(2, 1, "p"), projectkey(3, 2, "a" * 32, "b" * 32),
            orgauthtoken(4, 1, "existing-hash"), monitor(5, 1, 2, guid)]
    src = write_export(tmp_path / "k.json", rows)
    assert import_export(db_dsn, "organizations", src).code == 0
    before = {
        "keys": query(db_dsn, "SELECT id, public_key, secret_key FROM sentry_projectkey"),
        "tokens": query(db_dsn, "SELECT id, token_hashed FROM sentry_orgauthtoken"),
        "monitors": query(db_dsn, "SELECT id, guid::text FROM sentry_monitor"),
    }
    run = import_export(db_dsn, "organizations", src)
    assert run.code == 0, run.err
    keys = query(db_dsn, "SELECT id, public_key, secret_key FROM sentry_projectkey ORDER BY id")
    tokens = query(db_dsn, "SELECT id, token_hashed, token_last_characters FROM "
                           "sentry_orgauthtoken ORDER BY id")
    monitors = query(db_dsn, "SELECT id, guid::text FROM sentry_monitor ORDER BY id")
    assert keys[0] == before["keys"][0] and tokens[0][:2] == before["tokens"][0]
    assert monitors[0] == before["monitors"][0]
    assert keys[1][1] not in ("a" * 32, "b" * 32) and keys[1][2] not in ("a" * 32, "b" * 32)
    assert len(keys[1][1]) == 32 and len(keys[1][2]) == 32
    assert tokens[1][1] != "existing-hash" and len(tokens[1][1]) == 64  # a SHA-256 hex
    assert monitors[1][1] != guid


def test_behaviour_32_subscriptions_are_recreated_without_their_snuba_id(db_dsn, tmp_path):
    """Sentry re-creates each subscription (issue 13.3): no Snuba id, so none collides."""
    rows = [org(1, "o"), project(2, 1, "p"),
            row("sentry.snubaquery", 3, environment=None, type=0, dataset="events", query="",
                aggregate="count()", time_window=60, resolution=60, date_added=TS),
            row("sentry.querysubscription", 4, project=2, snuba_query=3, type="incidents",
                status=0, subscription_id="sub-1", date_added=TS, date_updated=TS,
                query_extra=None)]
    src = write_export(tmp_path / "q.json", rows)
    assert import_export(db_dsn, "organizations", src).code == 0
    run = import_export(db_dsn, "organizations", src)
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT status, subscription_id FROM sentry_querysubscription") == [
        (1, None), (1, None)]


@pytest.mark.parametrize("scope, imported", [("organizations", 0), ("global", 1)])
def test_behaviour_33_global_saved_search(db_dsn, tmp_path, scope, imported):
    rows = [row("sentry.savedsearch", 1, organization=None, owner_id=None, type=0,
                name="Global search", query="is:unresolved", sort="date", date_added=TS,
                is_global=True, visibility="organization")]
    run = import_export(db_dsn, scope, write_export(tmp_path / "s.json", rows))
    assert run.code == 0, run.err
    assert count(db_dsn, "sentry_savedsearch") == imported


def _owner_org(address, slug):
    return [user(1, "owner", address), email(1, address), useremail(1, 1, address),
            org(10, slug), member(1, 10, 1, role="owner")]


def test_behaviour_38_merge_users_in_organization_scope(db_dsn, tmp_path):
    assert import_export(db_dsn, "organizations", write_export(
        tmp_path / "1.json", _owner_org("existing@example.com", "first"))).code == 0
    run = import_export(db_dsn, "organizations", write_export(
        tmp_path / "2.json", _owner_org("imported@example.com", "second")), "--merge-users")
    assert run.code == 0, run.err
    assert count(db_dsn, "auth_user") == 1
    user_id = scalar(db_dsn, "SELECT id FROM auth_user")
    assert sorted(r[0] for r in query(
        db_dsn, "SELECT o.slug FROM sentry_organizationmember m JOIN sentry_organization o "
                "ON o.id = m.organization_id WHERE m.user_id = %s", (user_id,))) == [
        "first", "second"]
    assert count(db_dsn, "sentry_organizationmapping") == 2
    assert count(db_dsn, "sentry_organizationmembermapping") == 2
    assert query(db_dsn, "SELECT email FROM sentry_useremail") == [("existing@example.com",)]


def test_behaviour_39_no_merge_in_organization_scope(db_dsn, tmp_path):
    assert import_export(db_dsn, "organizations", write_export(
        tmp_path / "1.json", _owner_org("existing@example.com", "first"))).code == 0
    run = import_export(db_dsn, "organizations", write_export(
        tmp_path / "2.json", _owner_org("imported@example.com", "second")))
    assert run.code == 0, run.err
    pairs = query(db_dsn, "SELECT u.username, o.slug FROM sentry_organizationmember m JOIN "
                          "auth_user u ON u.id = m.user_id JOIN sentry_organization o ON "
                          "o.id = m.organization_id ORDER BY o.slug")
    assert pairs[0] == ("owner", "first")
    assert pairs[1][0].startswith("owner-") and pairs[1][1] == "second"


def test_behaviour_41_legacy_alert_rule_owners(db_dsn, tmp_path):
    def alertrule(pk, owner):
        return row("sentry.alertrule", pk, organization=1, snuba_query=None, team=None,
                   user_id=None, name=f"rule {pk}", status=0, threshold_type=0,
                   resolve_threshold=None, threshold_period=1, comparison_delta=None,
                   date_modified=TS, date_added=TS, monitor_type=0, description=None,
                   owner=owner)

    rows = [org(1, "o"), user(2, "alice"), team(3, 1, "devs"),
            row("sentry.actor", 50, type=1, user_id=2, team=None),
            row("sentry.actor", 51, type=0, user_id=None, team=3),
            alertrule(1, 50), alertrule(2, 51), alertrule(3, None), alertrule(4, 99)]
    run = import_export(db_dsn, "organizations", write_export(tmp_path / "a.json", rows))
    assert run.code == 0, run.err
    owners = query(db_dsn, "SELECT a.name, u.username, t.slug FROM sentry_alertrule a "
                           "LEFT JOIN auth_user u ON u.id = a.user_id LEFT JOIN sentry_team t "
                           "ON t.id = a.team_id ORDER BY a.name")
    assert owners == [("rule 1", "alice", None), ("rule 2", None, "devs"),
                      ("rule 3", None, None), ("rule 4", None, None)]


def test_behaviour_41_only_batches_with_a_legacy_owner_wait_for_the_actors():
    """Waiting for the actors means the runner holds the batch until the whole export is
    read: only a batch with a row that has a legacy ``owner`` takes that path."""
    from relocate.beam.pipeline import needs_export_lookups
    from relocate.io.export_reader import Row

    def batch(model, *owners):
        return model, [tuple(Row(model, i, i, {"owner": o, "name": "r"}))
                       for i, o in enumerate(owners)]

    no_users: dict[str, tuple[str, ...]] = {}
    assert not needs_export_lookups(batch("sentry.alertrule", None, None), no_users)
    assert not needs_export_lookups(batch("sentry.rule", None), no_users)
    assert needs_export_lookups(batch("sentry.alertrule", None, 50), no_users)
    assert needs_export_lookups(batch("sentry.rule", "not a pk"), no_users)  # a finding there
    assert not needs_export_lookups(batch("sentry.project", 50), no_users)


def test_behaviour_44_import_twice_global_then_org_and_config(db_dsn, fixtures_dir, tmp_path):
    src = fixtures_dir / "release-snapshots" / "test_at_24_7_0.json"
    assert import_export(db_dsn, "global", src).code == 0
    findings = tmp_path / "f.json"
    for scope in ("organizations", "config"):
        run = import_export(db_dsn, scope, src, "--findings-file", str(findings))
        assert run.code == 0, run.err
        assert json.loads(findings.read_text()) == []
    assert count(db_dsn, "sentry_organization") == 4  # 2 from global, 2 renamed on top
    assert count(db_dsn, "sentry_projectkey") == 8


def test_behaviour_53_single_fixtures(db_dsn, fixtures_dir):
    run = import_export(db_dsn, "config", fixtures_dir / "single-option.json")
    assert run.code == 0 and count(db_dsn, "sentry_option") == 1
    run = import_export(db_dsn, "organizations", fixtures_dir / "single-integration.json")
    assert run.code == 0 and count(db_dsn, "sentry_integration") == 0
    run = import_export(db_dsn, "global", fixtures_dir / "single-integration.json")
    assert run.code == 0 and count(db_dsn, "sentry_integration") == 1
    run = import_export(db_dsn, "organizations", fixtures_dir / "org-and-project.json")
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT email, inviter_id FROM sentry_organizationmember") == [
        ("pending@example.com", None)]
    assert count(db_dsn, "sentry_project") == 1 and count(db_dsn, "sentry_team") == 1


def test_behaviour_55_release_snapshot_24_7_0_global(db_dsn, fixtures_dir, tmp_path):
    src = fixtures_dir / "release-snapshots" / "test_at_24_7_0.json"
    findings, report = tmp_path / "f.json", tmp_path / "r.json"
    run = import_export(db_dsn, "global", src, "--findings-file", str(findings),
                        "--report-file", str(report))
    assert run.code == 0, run.err
    assert json.loads(findings.read_text()) == []
    rows = json.loads(src.read_text())
    written = scalar(db_dsn, "SELECT count(*) FROM relocate_pk_map")
    reported = json.loads(report.read_text())["rows"]
    assert written + len(reported) == len(rows)  # every row accounted for
    assert {r["reason"] for r in reported} == {
        "model removed from Sentry; its rows are not imported"}
    assert {r["model"] for r in reported} == {
        "sentry.alertruleexcludedprojects", "sentry.alertruletriggerexclusion",
        "sentry.incidentsubscription", "sentry.spanattributeextractionruleconfig",
        "sentry.spanattributeextractionrulecondition"}


@pytest.mark.parametrize("scope", ["users", "organizations", "config"])
@pytest.mark.parametrize("merge", [False, True])
def test_duplicate_username_and_org_slug(db_dsn, fixtures_dir, scope, merge):
    flags = ["--merge-users"] if merge else []
    run = import_export(db_dsn, scope,
                        fixtures_dir / "duplicate-username-and-organization-slug.json", *flags)
    assert run.code == 0, run.err
    usernames = sorted(r[0] for r in query(db_dsn, "SELECT username FROM auth_user"))
    if merge:
        assert usernames == ["testing@example.com"]
    else:
        assert usernames[0] == "testing@example.com"
        assert usernames[1].startswith("testing@example.com-")
    slugs = sorted(r[0] for r in query(db_dsn, "SELECT slug FROM sentry_organization"))
    if scope == "organizations":
        assert slugs[0] == "testing" and slugs[1].startswith("testing-")
        members = query(db_dsn, "SELECT count(DISTINCT user_id) FROM sentry_organizationmember")
        assert members == [(1 if merge else 2,)]
    else:
        assert slugs == []
    assert count(db_dsn, "sentry_option") == (4 if scope == "config" else 0)


def test_global_prompt_cancel(db_dsn, fixtures_dir, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    run = run_cli("import", "global", str(fixtures_dir / "fresh-install.json"), "--dsn", db_dsn)
    assert run.code == 0
    assert "irrecoverably delete all existing low-volume data" in run.err
    assert "Import cancelled." in run.err
    assert count(db_dsn, "auth_user") == 0


def test_global_prompt_yes(db_dsn, fixtures_dir, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    run = run_cli("import", "global", str(fixtures_dir / "fresh-install.json"), "--dsn", db_dsn)
    assert run.code == 0, run.err
    assert count(db_dsn, "auth_user") == 2


def test_user_ip_times_reset_outside_global(db_dsn, tmp_path):
    """UserIP is Global-only in the modelled version; its outside-Global rule still holds
    for the org scope's member users (behaviour 11): nothing is imported there."""
    rows = [user(1, "ip"), userip(1, 1, "8.8.8.8")]
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    assert import_export(db_dsn, "organizations", write_export(tmp_path / "i.json", rows)).code == 0
    assert count(db_dsn, "sentry_userip") == 0
    assert scalar(db_dsn, "SELECT date_joined FROM auth_user") < before
