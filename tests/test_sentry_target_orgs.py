"""Issue 13: a target a running Sentry (self-hosted monolith) can use, organization side.

Each test is named ``test_13_<point>_...`` and asserts the rows Sentry's own code would
leave; its docstring names the Sentry source file the expectation comes from (read in
getsentry/sentry, see /tmp/issue13-facts.md of the issue's research).
"""

from __future__ import annotations

import base64
import json
import re
import time

import psycopg
import pytest

from relocate.cli.flex import cli_arguments
from relocate.logic.rules.orgs import org_auth_token
from relocate.logic.settings import MONOLITH_REGION

from .exhaustive import exhaustive_rows
from .helpers import (
    chunks,
    count,
    import_export,
    query,
    row,
    run_cli,
    scalar,
    user,
    write_export,
)

# End to end, one import or more each: CI runs them (twice: on PostgreSQL 18 and 15).
pytestmark = [pytest.mark.acceptance, pytest.mark.slow]

TS = "2023-06-22T22:59:55.488Z"


def org(pk: int, slug: str, flags: str | None = "1", status: int = 0) -> dict:
    fields = dict(
        name=slug, slug=slug, status=status, date_added=TS, default_role="member", is_test=False
    )
    if flags is not None:
        fields["flags"] = flags
    return row("sentry.organization", pk, **fields)


def member(pk: int, org_pk: int, user_pk: int) -> dict:
    return row("sentry.organizationmember", pk, organization=org_pk, user_id=user_pk,
               email=None, role="member", flags="0", token=None, date_added=TS,
               token_expires_at=None, has_global_access=True, inviter_id=None,
               invite_status=0, type=50, user_is_active=True, user_email=None)


def project(pk: int, org_pk: int, slug: str) -> dict:
    return row("sentry.project", pk, slug=slug, name=slug, organization=org_pk, public=False,
               date_added=TS, status=0, first_event=None, flags="10", platform=None,
               forced_color=None, template=None)


def team(pk: int, org_pk: int, slug: str) -> dict:
    return row("sentry.team", pk, organization=org_pk, slug=slug, name=slug, status=0,
               date_added=TS)


def monitor(pk: int, org_pk: int, project_pk: int, slug: str) -> dict:
    return row("sentry.monitor", pk, organization_id=org_pk, project_id=project_pk,
               guid=f"00000000-0000-0000-0000-{pk:012d}", slug=slug, name=slug, status=0,
               type=3, config={"schedule": "* * * * *"}, date_added=TS, is_muted=False,
               owner_user_id=None, owner_team_id=None)


def orgauthtoken(pk: int, org_pk: int, hashed: str) -> dict:
    return row("sentry.orgauthtoken", pk, organization_id=org_pk, token_hashed=hashed,
               token_last_characters="xyz1", name=f"token {pk}", scope_list=["org:ci"],
               created_by=None, date_added=TS, date_last_used=None,
               project_last_used_id=None, date_deactivated=None)


def side_rows(dsn: str) -> list[tuple]:
    """(org slug, reservation slug, mapping slug, reservation region, mapping region)."""
    return query(
        dsn,
        "SELECT o.slug, r.slug, m.slug, r.region_name, m.region_name FROM sentry_organization o "
        "JOIN sentry_organizationslugreservation r ON r.organization_id = o.id "
        "JOIN sentry_organizationmapping m ON m.organization_id = o.id ORDER BY o.id",
    )


# -- 1. Region -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "flags", "expected"),
    [
        pytest.param(None, (), MONOLITH_REGION, id="empty-target-is-a-monolith"),
        pytest.param("mapping", (), "eu-west", id="region-of-the-target-mappings"),
        pytest.param("reservation", (), "eu-west", id="region-of-the-target-reservations"),
        pytest.param("mapping", ("--region-name", "de"), "de", id="flag-overrides-the-target"),
        pytest.param(None, ("--region-name", "de"), "de", id="flag-on-an-empty-target"),
    ],
)
def test_13_01_region_is_the_targets_or_the_monolith(db_dsn, tmp_path, existing, flags, expected):
    """A monolith's region is ``settings.SENTRY_MONOLITH_REGION`` = "--monolith--"
    (src/sentry/conf/server.py; src/sentry/types/region.py::get_local_region), written
    into the slug reservation (services/organization/provisioning.py::
    bulk_create_organization_slugs) and the mapping (organization_mapping/serial.py::
    update_organization_mapping_from_instance). A target that already has mappings or
    reservations says which region it is; ``--region-name`` overrides both."""
    with psycopg.connect(db_dsn) as conn:
        if existing == "mapping":
            conn.execute(
                "INSERT INTO sentry_organizationmapping (organization_id, slug, name, "
                "idempotency_key, region_name, status) VALUES (9000, 'old', 'old', '', "
                "'eu-west', 0)"
            )
        elif existing == "reservation":
            conn.execute(
                "INSERT INTO sentry_organizationslugreservation (slug, organization_id, "
                "user_id, region_name, reservation_type) VALUES ('old', 9000, -1, 'eu-west', 0)"
            )
    rows = [org(1, "fresh-org"), org(2, "fresh-org")]  # the second one takes the slow path
    run = import_export(db_dsn, "organizations", write_export(tmp_path / "o.json", rows), *flags)
    assert run.code == 0, run.err
    regions = {(r[3], r[4]) for r in side_rows(db_dsn) if r[0] != "old"}
    assert regions == {(expected, expected)}
    assert query(
        db_dsn,
        "SELECT DISTINCT region_name FROM hybridcloud_organizationslugreservationreplica "
        "WHERE slug <> 'old'",
    ) == [(expected,)]


@pytest.mark.parametrize("value", ["", "x" * 49])
def test_13_01_region_name_flag_is_checked(db_dsn, tmp_path, capsys, value):
    """REGION_NAME_LENGTH = 48 (src/sentry/hybridcloud/rpc/__init__.py): a longer or empty
    name is refused before anything happens."""
    src = write_export(tmp_path / "o.json", [org(1, "acme")])
    with pytest.raises(SystemExit) as exited:
        import_export(db_dsn, "organizations", src, "--region-name", value)
    assert exited.value.code == 2
    assert "--region-name" in capsys.readouterr().err
    assert count(db_dsn, "sentry_organization") == 0


def test_13_01_region_name_in_the_flex_template():
    """The Flex Template takes the flag too (dataflow/metadata.json, relocate/cli/flex.py)."""
    with open("dataflow/metadata.json", encoding="utf-8") as f:
        metadata = json.load(f)
    assert "region_name" in {p["name"] for p in metadata["parameters"]}
    argv = cli_arguments(["--scope=global", "--src=gs://b/x.json", "--region_name=de"])
    assert argv[argv.index("--region-name") + 1] == "de"


# -- 2. Mapping flags ------------------------------------------------------------------------

#: Organization.flags bits (src/sentry/models/organization.py, class flags) and the
#: mapping column each becomes (organization_mapping/serial.py; upsert() maps
#: ``requires_2fa`` onto the column ``require_2fa``).
FLAG_COLUMNS = (
    "allow_joinleave",
    "enhanced_privacy",
    "disable_shared_issues",
    "early_adopter",
    "require_2fa",
    "disable_new_visibility_features",
    "require_email_verification",
    "codecov_access",
    "disable_member_project_creation",
    "prevent_superuser_access",
    "disable_member_invite",
)
NEWER_COLUMNS = FLAG_COLUMNS[8:]  # newer Sentry only: not in relocate's schema


@pytest.mark.parametrize("collide", [False, True], ids=["fast-path", "row-by-row"])
@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(1 << 4, id="require_2fa-only"),
        pytest.param(1, id="default-allow_joinleave"),
        pytest.param((1 << 11) - 1, id="every-flag"),
        pytest.param(0, id="none"),
        pytest.param((1 << 1) | (1 << 6) | (1 << 9), id="privacy-email-superuser"),
        pytest.param(None, id="no-flags-field"),
    ],
)
def test_13_02_mapping_copies_the_org_flags(db_dsn, tmp_path, flags, collide):
    """``update_organization_mapping_from_instance`` sets every flag of the mapping from
    ``bool(organization.flags.X)`` (src/sentry/hybridcloud/services/organization_mapping/
    serial.py); ``User.has_org_requiring_2fa`` (src/sentry/users/models/user.py) reads the
    mapping's ``require_2fa`` of ACTIVE organizations, so an imported organization that
    requires 2FA must keep requiring it. A missing flags field is the bitfield default 1."""
    with psycopg.connect(db_dsn) as conn:
        for column in NEWER_COLUMNS:  # a newer target: these are written too
            conn.execute(
                f"ALTER TABLE sentry_organizationmapping ADD COLUMN {column} boolean "
                "NOT NULL DEFAULT false"
            )
    rows = [user(1, "alice"), org(1, "acme", None if flags is None else str(flags)),
            member(1, 1, 1)]
    if collide:
        first = write_export(tmp_path / "first.json", [org(1, "acme")])
        assert import_export(db_dsn, "organizations", first).code == 0
    run = import_export(db_dsn, "organizations", write_export(tmp_path / "o.json", rows))
    assert run.code == 0, run.err
    bits = 1 if flags is None else flags
    (mapping,) = query(
        db_dsn,
        f"SELECT {', '.join(FLAG_COLUMNS)} FROM sentry_organizationmapping m "
        "JOIN sentry_organizationmember om ON om.organization_id = m.organization_id",
    )
    assert dict(zip(FLAG_COLUMNS, mapping)) == {
        c: bool(bits >> i & 1) for i, c in enumerate(FLAG_COLUMNS)
    }
    # User.has_org_requiring_2fa, as Sentry queries it.
    (user_id,) = query(db_dsn, "SELECT id FROM auth_user WHERE username = 'alice'")[0]
    requires = scalar(
        db_dsn,
        "SELECT EXISTS (SELECT 1 FROM sentry_organizationmembermapping mm WHERE mm.user_id = %s "
        "AND mm.organization_id IN (SELECT organization_id FROM sentry_organizationmapping "
        "WHERE require_2fa AND status = 0))",
        (user_id,),
    )
    assert requires is bool(bits >> 4 & 1)


# -- 4. Replicas -----------------------------------------------------------------------------

#: ApiScopes in bitfield order (src/sentry/models/apiscopes.py, HasApiScopes.ScopesDict).
API_SCOPES = (
    "project:read", "project:write", "project:admin", "project:releases", "team:read",
    "team:write", "team:admin", "event:read", "event:write", "event:admin", "org:read",
    "org:write", "org:admin", "member:read", "member:write", "member:admin",
    "org:integrations", "alerts:read", "alerts:write", "member:invite",
)


def _scopes(scope_list: list[str] | None, bits: int) -> list[str]:
    """HasApiScopes.get_scopes: the list when it is not empty, else the bits' names."""
    if scope_list:
        return scope_list
    return [name for i, name in enumerate(API_SCOPES) if bits >> i & 1]


def _rowset(dsn: str, sql: str) -> set[tuple]:
    """The rows of a query as a set (array values as tuples)."""
    return {tuple(tuple(v) if isinstance(v, list) else v for v in r) for r in query(dsn, sql)}


def _expected_replicas(dsn: str) -> dict[str, tuple[set[tuple], str]]:
    """Replica table -> (the rows Sentry's replica service writes, the query reading them).

    From src/sentry/hybridcloud/services/replica/impl.py (the upsert_* methods) and the
    serializers they receive (src/sentry/auth/services/auth/serial.py).
    """
    out = {}
    out["hybridcloud_organizationslugreservationreplica"] = (
        _rowset(dsn, "SELECT id, slug, organization_id, user_id, region_name, "
                     "reservation_type FROM sentry_organizationslugreservation"),
        "SELECT organization_slug_reservation_id, slug, organization_id, user_id, region_name, "
        "reservation_type FROM hybridcloud_organizationslugreservationreplica",
    )
    out["hybridcloud_orgauthtokenreplica"] = (
        _rowset(dsn, "SELECT organization_id, id, token_hashed, name, scope_list, "
                       "created_by_id, date_deactivated FROM sentry_orgauthtoken"),
        "SELECT organization_id, orgauthtoken_id, token_hashed, name, scope_list, created_by_id, "
        "date_deactivated FROM hybridcloud_orgauthtokenreplica",
    )
    tokens = set()
    for (tid, app, status, user_id, token, hashed, expires, origins, scope_list, bits,
         scoping) in query(
        dsn,
        "SELECT t.id, t.application_id, a.status, t.user_id, t.token, t.hashed_token, "
        "t.expires_at, a.allowed_origins, t.scope_list, t.scopes, t.scoping_organization_id "
        "FROM sentry_apitoken t LEFT JOIN sentry_apiapplication a ON a.id = t.application_id",
    ):
        split = (origins or "").split()  # ApiToken.get_allowed_origins: its application's
        tokens.add((app, None, app is None or status == 0, user_id, tid, token, hashed,
                    expires, "\n".join(split) if split else None,
                    tuple(_scopes(scope_list, bits)), 0, scoping))
    out["hybridcloud_apitokenreplica"] = (
        tokens,
        "SELECT application_id, organization_id, application_is_active, user_id, apitoken_id, "
        "token, hashed_token, expires_at, allowed_origins, scope_list, scopes, "
        "scoping_organization_id FROM hybridcloud_apitokenreplica",
    )
    keys = set()
    for kid, org_id, label, key, status, origins, scope_list, bits in query(
        dsn, "SELECT id, organization_id, label, key, status, allowed_origins, scope_list, "
             "scopes FROM sentry_apikey"
    ):
        kept = [o for o in (origins or "").split("\n") if o]  # ApiKey.get_allowed_origins
        keys.add((kid, org_id, label, key, status, "\n".join(kept),
                  tuple(_scopes(scope_list, bits)), 0))
    out["hybridcloud_apikeyreplica"] = (
        keys,
        "SELECT apikey_id, organization_id, label, key, status, allowed_origins, scope_list, "
        "scopes FROM hybridcloud_apikeyreplica",
    )
    out["sentry_authproviderreplica"] = (
        {
            (pid, org_id, provider, config, role, access, bool(flags & 1), bool(flags & 2))
            for pid, org_id, provider, config, role, access, flags in query(
                dsn, "SELECT id, organization_id, provider, config, default_role, "
                     "default_global_access, flags FROM sentry_authprovider")
        },
        "SELECT auth_provider_id, organization_id, provider, config, default_role, "
        "default_global_access, allow_unlinked, scim_enabled FROM sentry_authproviderreplica",
    )
    out["sentry_authidentityreplica"] = (
        _rowset(dsn, "SELECT id, user_id, auth_provider_id, ident, data, last_verified "
                     "FROM sentry_authidentity"),
        "SELECT auth_identity_id, user_id, auth_provider_id, ident, data, last_verified "
        "FROM sentry_authidentityreplica",
    )
    out["sentry_organizationmember_teamsreplica"] = (
        _rowset(dsn, "SELECT t.team_id, m.organization_id, t.organizationmember_id, t.id, "
                     "t.is_active, t.role FROM sentry_organizationmember_teams t "
                     "JOIN sentry_organizationmember m ON m.id = t.organizationmember_id"),
        "SELECT team_id, organization_id, organizationmember_id, organizationmemberteam_id, "
        "is_active, role FROM sentry_organizationmember_teamsreplica",
    )
    out["sentry_teamreplica"] = (
        _rowset(dsn, "SELECT id, organization_id, slug, name, status FROM sentry_team"),
        "SELECT team_id, organization_id, slug, name, status FROM sentry_teamreplica",
    )
    return out


def test_13_04_replicas_of_every_replicated_model(db_dsn, tmp_path):
    """Sentry writes a replica for every imported ApiToken, OrgAuthToken, ApiKey,
    AuthProvider, AuthIdentity, OrganizationSlugReservation (region side) and Team,
    OrganizationMemberTeam (control side) through its outboxes
    (src/sentry/hybridcloud/services/replica/impl.py, ``handle_replication`` and the
    ``upsert_*`` methods); a monolith's region code reads them. Rollback removes them."""
    src = write_export(tmp_path / "all.json", exhaustive_rows())
    uuid = "4" * 32
    run = import_export(db_dsn, "global", src, "--import-uuid", uuid)
    assert run.code == 0, run.err
    expected = _expected_replicas(db_dsn)
    for table, (rows, sql) in expected.items():
        assert rows, f"the export has no source row for {table}"
        assert _rowset(db_dsn, sql) == rows, table
        # date_added is the replication time, not the source's (replica/impl.py).
        assert scalar(db_dsn, f"SELECT min(date_added) FROM {table}").year > 2023
    recorded = {
        t for (t,) in query(db_dsn, "SELECT DISTINCT table_name FROM relocate_side_effect")
    }
    assert set(expected) <= recorded
    rolled = run_cli("rollback", "--import-uuid", uuid, "--dsn", db_dsn)
    assert rolled.code == 0, rolled.err
    for table in expected:
        assert count(db_dsn, table) == 0, table


def test_13_04_replicas_in_the_organizations_scope_and_without_their_tables(db_dsn, tmp_path):
    """The organizations scope writes the replicas of its own models (teams, member-team
    links, org auth tokens, slug reservations: replica/impl.py). A target without a replica
    table (an older Sentry) imports without that replica."""
    with psycopg.connect(db_dsn) as conn:
        conn.execute("DROP TABLE sentry_teamreplica")
    rows = [
        user(1, "alice"), org(1, "acme"), member(1, 1, 1), team(1, 1, "red"),
        row("sentry.organizationmemberteam", 1, team=1, organizationmember=1, is_active=True,
            role="admin"),
        orgauthtoken(1, 1, "f" * 64),
    ]
    run = import_export(db_dsn, "organizations", write_export(tmp_path / "o.json", rows))
    assert run.code == 0, run.err
    expected = _expected_replicas(db_dsn)
    for table in (
        "hybridcloud_organizationslugreservationreplica",
        "hybridcloud_orgauthtokenreplica",
        "sentry_organizationmember_teamsreplica",
    ):
        rows_, sql = expected[table]
        assert len(rows_) == 1
        assert _rowset(db_dsn, sql) == rows_, table
    assert count(db_dsn, "sentry_organizationmember_teams") == 1


# -- 5. OrgAuthToken URL and format ------------------------------------------------------------


def _decode(token: str) -> tuple[str, dict, str]:
    prefix, rest = token.split("_", 1)
    encoded, secret = rest.rsplit("_", 1)
    return encoded, json.loads(base64.b64decode(encoded)), secret


@pytest.mark.parametrize("slug", ["a", "ab", "abc", "acme-corp", "x" * 30])
@pytest.mark.parametrize("url", ["", "https://sentry.example.com"])
def test_13_05_org_auth_token_format(slug, url):
    """``generate_token`` (src/sentry/utils/security/orgauthtoken_token.py): "sntrys_" +
    standard base64 of the compact JSON payload {iat, url, region_url, org} with its "="
    padding KEPT + "_" + base64 of 32 random bytes with the padding stripped."""
    before = time.time()
    token = org_auth_token(slug, url)
    encoded, payload, secret = _decode(token)
    assert token.startswith("sntrys_")
    assert list(payload) == ["iat", "url", "region_url", "org"]
    assert payload["url"] == payload["region_url"] == url and payload["org"] == slug
    assert before <= payload["iat"] <= time.time()
    compact = json.dumps(payload, separators=(",", ":")).encode()
    assert base64.b64decode(encoded) == compact
    assert encoded == base64.b64encode(compact).decode()  # padding kept
    assert len(secret) == 43 and "=" not in secret
    assert len(base64.b64decode(secret + "=")) == 32


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        pytest.param(None, "", id="unset-reads-as-empty"),
        pytest.param('"https://sentry.example.com"', "https://sentry.example.com", id="set"),
        pytest.param("null", "", id="json-null"),
        pytest.param('""', "", id="empty-string"),
        pytest.param("not json", "", id="not-json"),
    ],
)
def test_13_05_url_prefix_read_from_the_target(db_dsn, stored, expected):
    """``options.get("system.url-prefix")``: the option is registered without a default,
    which the options manager (src/sentry/options/manager.py) turns into "": an unset
    option gives the url "" (no SystemUrlPrefixMissingException in practice)."""
    from relocate.logic.rules.orgs import target_url_prefix

    with psycopg.connect(db_dsn) as conn:
        if stored is not None:
            conn.execute(
                "INSERT INTO sentry_option (key, value, last_updated, last_updated_by) "
                "VALUES ('system.url-prefix', %s, now(), 'unknown')",
                (stored,),
            )
        with conn.cursor() as cur:
            assert target_url_prefix(cur) == expected


def test_13_05_colliding_token_is_regenerated_without_the_option(db_dsn, tmp_path):
    """OrgAuthToken.normalize_before_relocation_import (src/sentry/models/orgauthtoken.py):
    a colliding ``token_hashed`` gets a new token for the organization's final slug; an
    unset url-prefix reads as "" so the row is kept (see above)."""
    rows = [org(1, "acme"), orgauthtoken(1, 1, "e" * 64)]
    src = write_export(tmp_path / "o.json", rows)
    assert import_export(db_dsn, "organizations", src).code == 0
    run = import_export(db_dsn, "organizations", src)
    assert run.code == 0, run.err
    hashes = query(db_dsn, "SELECT token_hashed, token_last_characters FROM sentry_orgauthtoken "
                           "ORDER BY id")
    assert len(hashes) == 2 and hashes[0] == ("e" * 64, "xyz1")
    assert re.fullmatch("[0-9a-f]{64}", hashes[1][0]) and hashes[1][0] != "e" * 64
    assert len(hashes[1][1]) == 4


# -- 6. Organization slugs of at most 30 characters -------------------------------------------


@pytest.mark.parametrize(
    ("slug", "first", "pattern"),
    [
        pytest.param("a" * 40, False, "a" * 30, id="long-free-slug-cut"),
        pytest.param("abcdefghijklmnopqrstuvwxyzabc-defgh", False,
                     "abcdefghijklmnopqrstuvwxyzabc", id="cut-then-stripped"),
        pytest.param("12345", False, r"12345-[a-z0-9]{2}", id="free-all-digit-slug-suffixed"),
        pytest.param("2023", True, r"2023-[a-z0-9]{2}", id="all-digit-after-another-org"),
        pytest.param("b" * 40, True, "b" * 27 + r"-[a-z0-9]{2}", id="long-colliding-slug"),
        pytest.param("c" * 30, True, "c" * 27 + r"-[a-z0-9]{2}", id="30-colliding"),
        pytest.param("d" * 29, False, "d" * 29, id="short-free-slug-kept"),
    ],
)
def test_13_06_org_slug_is_at_most_30(db_dsn, tmp_path, slug, first, pattern):
    """``slugify_instance(inst, label, reserved=(), max_length=30)``
    (src/sentry/db/models/utils.py): ``slugify(label)[:30].strip("-")``, and
    ``unique_db_instance`` keeps the value only if it is free AND not ``isdecimal()``;
    a suffixed candidate is ``base[:30 - len(suffix) - 1] + "-" + suffix``.
    Organization.save and ``_generate_org_slug`` pass no max_length."""
    if first:
        other = write_export(tmp_path / "first.json", [org(1, "zzz-other")])
        assert import_export(db_dsn, "organizations", other).code == 0
        if not slug.isdecimal():
            taken = write_export(tmp_path / "taken.json", [org(1, slug)])
            assert import_export(db_dsn, "organizations", taken).code == 0
    run = import_export(db_dsn, "organizations", write_export(tmp_path / "o.json",
                                                              [org(5, slug)]))
    assert run.code == 0, run.err
    newest = side_rows(db_dsn)[-1]
    assert newest[0] == newest[1] == newest[2]
    assert re.fullmatch(pattern, newest[0]), newest[0]
    assert len(newest[0]) <= 30


# -- 13. inserted_identifiers of every slugged model ------------------------------------------


@pytest.mark.parametrize("scope", ["organizations", "global"])
def test_13_13_inserted_identifiers_hold_every_slug(db_dsn, tmp_path, scope):
    """``import_by_model`` records ``getattr(instance, "slug", None)`` of every written
    instance, and ``inserted_identifiers`` = {old pk: slug} of the Inserted ones
    (src/sentry/backup/imports.py), for any sluggable model: projects, teams, monitors..."""
    rows = [
        org(1, "acme"), team(3, 1, "red"), team(4, 1, "blue"),
        project(7, 1, "web"), project(8, 1, "api"), monitor(9, 1, 7, "nightly"),
        row("sentry.projectkey", 1, project=7, label="Default", public_key="a" * 32,
            secret_key="b" * 32, roles="1", status=0, date_added=TS, rate_limit_count=None,
            rate_limit_window=None, data={}, use_case="user"),
    ]
    run = import_export(db_dsn, scope, write_export(tmp_path / "o.json", rows))
    assert run.code == 0, run.err
    expected = {
        "sentry.organization": {"1": "acme"},
        "sentry.team": {"3": "red", "4": "blue"},
        "sentry.project": {"7": "web", "8": "api"},
        "sentry.monitor": {"9": "nightly"},
        "sentry.projectkey": {},
    }
    for model, identifiers in expected.items():
        (chunk,) = chunks(db_dsn, model)
        assert chunk["inserted_identifiers"] == identifiers, model


# -- 14. A failed Global import says the target was wiped ----------------------------------


def test_13_14_failed_global_import_says_the_target_was_wiped(db_dsn, tmp_path):
    """Sentry's monolith import runs the Global wipe and every write in ONE transaction
    (src/sentry/backup/imports.py, ``_import``: ``unguarded_write`` + ``transaction.atomic``
    around ``_clear_model_tables_before_import`` and ``do_writes``), so a database error
    leaves the target as it was. relocate commits the wipe and each stage: the failure
    message says the target was wiped, which stages committed, and what to run (resume with
    --import-uuid, or restore from a backup: rollback cannot bring back what the wipe
    deleted)."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sentry_organization (id, name, slug, status, date_added, default_role,"
            " flags, is_test) VALUES (900, 'before', 'before', 0, now(), 'member', 0, false)"
        )
        # A rule of this target only (a trigger): stage 3 (projects) fails at write time.
        conn.execute(
            "CREATE FUNCTION no_projects() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no projects here'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER no_projects BEFORE INSERT ON sentry_project "
            "FOR EACH ROW EXECUTE FUNCTION no_projects()"
        )
    rows = [org(1, "acme"), org(2, "other"), team(3, 1, "red"),
            project(7, 1, "web"), project(8, 2, "api")]
    src = write_export(tmp_path / "g.json", rows)
    uuid = "14" * 16
    run = import_export(db_dsn, "global", src, "--import-uuid", uuid)
    assert run.code == 1
    err = " ".join(run.err.split())
    # What the target holds: wiped (the row from before is gone), stages 1-2 committed.
    assert query(db_dsn, "SELECT slug FROM sentry_organization ORDER BY slug") == [
        ("acme",), ("other",)]
    assert count(db_dsn, "sentry_team") == 1 and count(db_dsn, "sentry_project") == 0
    assert "wiped" in err
    assert "The write of stage 3 (sentry.project) failed" in err
    assert "stage 1: sentry.organization 2" in err and "stage 2: sentry.team 1" in err
    assert f"--import-uuid {uuid}" in err
    assert "backup" in err and "cannot" in err
    # Resuming once the cause is gone finishes the import without wiping again.
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("DROP TRIGGER no_projects ON sentry_project")
    resumed = import_export(db_dsn, "global", src, "--import-uuid", uuid)
    assert resumed.code == 0, resumed.err
    assert count(db_dsn, "sentry_project") == 2 and count(db_dsn, "sentry_organization") == 2
