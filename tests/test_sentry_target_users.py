"""Issue 13, user and project side: the rows Sentry's own import leaves, so that a running
Sentry can use the target.

Each test names the point of issue 13 it checks and, in its docstring, the Sentry source
file whose behaviour it asserts (read from getsentry/sentry). Every import is a real run
of ``relocate import`` against PostgreSQL.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from relocate.db.username_index import (
    INDEX_NAME,
    ensure_lower_username_index,
    has_lower_username_index,
)
from relocate.logic.convert import Converted, RowInvalid
from relocate.logic.rules.common import SUFFIX_ALPHABET, first_free, unique_candidates
from relocate.logic.rules.users import (
    UserOptionHandler,
    claim_usernames,
    release_usernames,
    taken_usernames,
)
from relocate.logic.settings import ImportSettings

from .helpers import (
    TS,
    TWO_WORKERS,
    apitoken,
    count,
    email,
    import_export,
    query,
    row,
    scalar,
    user,
    useremail,
    userip,
    useroption,
    userpermission,
    write_export,
)

# End to end, one import or more each: CI runs them (twice: on PostgreSQL 18 and 15).
pytestmark = [pytest.mark.acceptance, pytest.mark.slow]


def org(pk: int, slug: str) -> dict:
    return row("sentry.organization", pk, name=slug, slug=slug, status=0, date_added=TS,
               default_role="member", flags="1", is_test=False)  # fmt: skip


def project(pk: int, org_pk: int, slug: str) -> dict:
    return row("sentry.project", pk, slug=slug, name=slug, organization=org_pk, public=False,
               date_added=TS, status=0, first_event=None, flags="10", platform=None,
               forced_color=None, template=None)  # fmt: skip


def projectkey(pk: int, project_pk: int, label: object = "Default", **extra: object) -> dict:
    fields = dict(project=project_pk, label=label, public_key=f"{pk:032x}",
                  secret_key=f"{pk + 1000:032x}", roles="1", status=0, date_added=TS,
                  rate_limit_count=None, rate_limit_window=None, data={},
                  use_case="user")  # fmt: skip
    fields.update(extra)
    return row("sentry.projectkey", pk, **fields)


def projectoption(pk: int, project_pk: int, key: str, value: object) -> dict:
    return row("sentry.projectoption", pk, project=project_pk, key=key, value=value)


def snubaquery(pk: int) -> dict:
    return row("sentry.snubaquery", pk, environment=None, type=0, dataset="events",
               query="level:error", aggregate="count()", time_window=600, resolution=60,
               date_added=TS)  # fmt: skip


def alertrule(pk: int, org_pk: int, query_pk: int) -> dict:
    return row("sentry.alertrule", pk, organization=org_pk, snuba_query=query_pk,
               name=f"rule {pk}", status=0, threshold_type=0, resolve_threshold=None,
               threshold_period=1, date_modified=TS, date_added=TS, comparison_delta=None,
               description=None, monitor_type=0, team=None, user_id=None)  # fmt: skip


def subscription(pk: int, project_pk: int, query_pk: int, **fields: object) -> dict:
    base = dict(project=project_pk, snuba_query=query_pk, type="incidents", status=0,
                subscription_id=f"0/{pk:032x}", date_added="2021-03-04T05:06:07.000Z",
                date_updated="2021-03-04T05:06:07.000Z", query_extra=None)  # fmt: skip
    base.update(fields)
    return row("sentry.querysubscription", pk, **base)


def monitor(pk: int, org_pk: int, project_pk: int, guid: str) -> dict:
    return row("sentry.monitor", pk, organization_id=org_pk, project_id=project_pk, guid=guid,
               slug=f"m{pk}", name="", status=0, type=3, config={"schedule": "* * * * *"},
               date_added=TS, is_muted=False, owner_user_id=None, owner_team_id=None)  # fmt: skip


def incident(pk: int, org_pk: int, rule_pk: int, detection_uuid: str | None) -> dict:
    return row("sentry.incident", pk, organization=org_pk, alert_rule=rule_pk, identifier=pk,
               detection_uuid=detection_uuid, status=1, status_method=3, type=2,
               title=f"incident {pk}", date_started=TS, date_detected=TS, date_added=TS,
               date_closed=None, activation=None, subscription=None)  # fmt: skip


def findings_of(path) -> list[dict]:
    return json.loads(path.read_text())


def run_with_findings(dsn: str, scope: str, rows: list[dict], tmp_path, *flags: str):
    findings = tmp_path / "findings.json"
    src = write_export(tmp_path / "export.json", rows)
    run = import_export(dsn, scope, src, "--findings-file", str(findings), *flags)
    return run, findings_of(findings)


def add_user(dsn: str, username: str, email_: str = "existing@example.com") -> int:
    """A user already in the target (as a running Sentry holds them)."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "INSERT INTO auth_user (password, username, first_name, email, is_staff, "
            "is_superuser, is_managed, is_active, is_unclaimed, is_password_expired, flags, "
            "date_joined, avatar_type) VALUES ('!x', %s, '', %s, false, false, false, true, "
            "false, false, 0, %s, 0) RETURNING id",
            (username, email_, TS),
        ).fetchone()[0]


def recent(value: datetime, seconds: int = 600) -> bool:
    return abs((datetime.now(timezone.utc) - value).total_seconds()) < seconds


# ----------------------------------------------------------------------------------------
# Point 3: query subscriptions are re-created, in CREATING, and the operator is told.


SUBSCRIPTION_VARIANTS = {
    "active_with_id": {},
    "updating": {"status": 2},
    "disabled_with_extra": {"status": 4, "query_extra": "release:1.0"},
    "creating_without_id": {"status": 1, "subscription_id": None},
}


@pytest.mark.parametrize("variant", sorted(SUBSCRIPTION_VARIANTS))
def test_13_03_query_subscriptions_are_recreated_in_creating(db_dsn, tmp_path, variant):
    """``QuerySubscription.write_relocation_import`` (src/sentry/snuba/models.py) discards
    the exported row and calls ``create_snuba_subscription`` (src/sentry/snuba/
    subscriptions.py): status CREATING (1), ``subscription_id`` NULL, no ``query_extra``,
    ``date_updated`` now, only ``date_added`` kept. The summary says what registers them
    (``subscription_checker``, src/sentry/snuba/tasks.py; beat entry in
    src/sentry/conf/server.py)."""
    rows = [org(1, "o"), project(2, 1, "p"), snubaquery(3),
            subscription(4, 2, 3, **SUBSCRIPTION_VARIANTS[variant]),
            subscription(5, 2, 3, subscription_id=f"0/{99:032x}")]  # fmt: skip
    run = import_export(db_dsn, "organizations", write_export(tmp_path / "q.json", rows))
    assert run.code == 0, run.err
    project_id = scalar(db_dsn, "SELECT id FROM sentry_project")
    query_id = scalar(db_dsn, "SELECT id FROM sentry_snubaquery")
    subs = query(
        db_dsn,
        "SELECT project_id, snuba_query_id, type, status, subscription_id, query_extra, "
        "date_added, date_updated FROM sentry_querysubscription ORDER BY id",
    )
    added = datetime(2021, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    assert len(subs) == 2
    for project_id_, query_id_, kind, status, sub_id, extra, date_added, date_updated in subs:
        assert (project_id_, query_id_, kind) == (project_id, query_id, "incidents")
        assert (status, sub_id, extra) == (1, None, None)
        assert date_added == added and recent(date_updated)
    assert "2 query subscription(s) were imported" in run.err
    assert "snuba-subscription-checker" in run.err and "subscription_checker" in run.err


def test_13_03_subscription_note_only_when_subscriptions_were_written(db_dsn, tmp_path):
    """No subscription, no note; ``--silent`` prints nothing at all (Sentry's flag)."""
    rows = [org(1, "o"), project(2, 1, "p")]
    run = import_export(db_dsn, "organizations", write_export(tmp_path / "p.json", rows))
    assert run.code == 0, run.err
    assert "query subscription" not in run.err
    rows = [org(1, "o2"), project(2, 1, "p"), snubaquery(3), subscription(4, 2, 3)]
    run = import_export(
        db_dsn, "organizations", write_export(tmp_path / "q.json", rows), "--silent"
    )
    assert run.code == 0 and run.err == ""
    assert query(db_dsn, "SELECT status, subscription_id FROM sentry_querysubscription") == [
        (1, None)
    ]


# ----------------------------------------------------------------------------------------
# Point 7: usernames that collide only in case; blank usernames.


@pytest.mark.parametrize(
    "existing, imported",
    [("Admin", "admin"), ("admin", "ADMIN"), ("MiXeD.Name", "mixed.name")],
)
def test_13_07_case_only_username_collision_is_renamed(db_dsn, tmp_path, existing, imported):
    """Sentry's user serializer rejects a name that collides ignoring case
    (``validate_username``: ``username__iexact``, src/sentry/users/api/endpoints/
    user_details.py), so its import fails there; relocate renames it like an exact
    collision (``unique_db_instance``, src/sentry/db/models/utils.py)."""
    existing_id = add_user(db_dsn, existing)
    run = import_export(db_dsn, "users", write_export(tmp_path / "u.json", [user(1, imported)]))
    assert run.code == 0, run.err
    names = query(db_dsn, "SELECT id, username FROM auth_user ORDER BY id")
    assert names[0] == (existing_id, existing)
    (_, renamed), = names[1:]  # fmt: skip
    assert renamed.lower() != existing.lower()
    assert re.fullmatch(re.escape(imported) + "-[a-z0-79]{2,12}", renamed), renamed


def test_13_07_case_only_collision_inside_the_export(db_dsn, tmp_path):
    """Two rows of one export whose names differ only in case: the first keeps its name,
    the second is renamed (Sentry would fail the import on the second)."""
    rows = [user(1, "alice"), user(2, "Alice"), user(3, "ALICE")]
    run = import_export(db_dsn, "users", write_export(tmp_path / "u.json", rows))
    assert run.code == 0, run.err
    names = [r[0] for r in query(db_dsn, "SELECT username FROM auth_user ORDER BY id")]
    assert names[0] == "alice"
    assert len({n.lower() for n in names}) == 3
    assert all(re.fullmatch("alice-[a-z0-79]{2,12}", n.lower()) for n in names[1:]), names


def test_13_07_an_import_indexes_lower_username_and_the_check_finds_names_either_way(
    db_dsn, tmp_path
):
    """The case-insensitive name check probes an index on ``lower(username)``, which an
    import creates; without one (a role that may not create it) it reads the table, with
    the same answer."""
    add_user(db_dsn, "Admin")
    add_user(db_dsn, "bob")
    keys = ["admin", "bob", "carol"]
    with psycopg.connect(db_dsn) as conn, conn.cursor() as cur:
        assert not has_lower_username_index(cur)
        assert taken_usernames(cur, keys, indexed=False) == {"admin", "bob"}
    run = import_export(db_dsn, "users", write_export(tmp_path / "u.json", [user(1, "ADMIN")]))
    assert run.code == 0, run.err
    with psycopg.connect(db_dsn) as conn, conn.cursor() as cur:
        assert has_lower_username_index(cur)
        assert taken_usernames(cur, keys, indexed=True) == {"admin", "bob"}
        assert ensure_lower_username_index(conn)  # there already: nothing to do
        names = [r[0] for r in cur.execute("SELECT username FROM auth_user ORDER BY id")]
        assert names[:2] == ["Admin", "bob"] and names[2].startswith("ADMIN-")
        cur.execute(f"DROP INDEX {INDEX_NAME}")
        cur.execute("CREATE INDEX operators_own ON auth_user (lower(username))")
        assert has_lower_username_index(cur)  # any name will do
        cur.execute("DROP INDEX operators_own")
        cur.execute("CREATE INDEX other ON auth_user (upper(username))")
        assert not has_lower_username_index(cur)


def test_13_07_without_the_privilege_to_index_the_import_goes_on(db_dsn, tmp_path, caplog):
    """A role that does not own ``auth_user`` cannot create the index: the import says so
    in one line and checks names by reading the table."""
    role = "relocate_not_owner"
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT ALL ON SCHEMA public TO {role}")
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
        for (table,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename LIKE 'relocate\\_%'"
        ).fetchall():
            conn.execute(f'ALTER TABLE "{table}" OWNER TO {role}')  # relocate's own
    add_user(db_dsn, "Admin")
    try:
        run = import_export(
            db_dsn + f" user={role}",
            "users",
            write_export(tmp_path / "u.json", [user(1, "admin"), user(2, "carol")]),
        )
        assert run.code == 0, run.err
        assert "no index on lower(username) of auth_user" in caplog.text
        with psycopg.connect(db_dsn) as conn, conn.cursor() as cur:
            assert not has_lower_username_index(cur)
            names = [r[0] for r in cur.execute("SELECT username FROM auth_user ORDER BY id")]
        assert names[0] == "Admin" and names[1].startswith("admin-") and names[2] == "carol"
    finally:
        with psycopg.connect(db_dsn, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def _waits_on_a_lock(conn: psycopg.Connection, pid: int) -> bool:
    row = conn.execute(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    return row is not None and row[0] == "Lock"


def test_13_07_concurrent_batches_check_a_name_in_turn(db_dsn):
    """Two batches checking the same name (ignoring case) take turns: the second waits at
    its claim until the first commits, then its check sees the first's user. Batches
    with other names do not wait. The claim table is empty once both have committed."""
    first = psycopg.connect(db_dsn)
    second = psycopg.connect(db_dsn)
    other = psycopg.connect(db_dsn)
    watch = psycopg.connect(db_dsn, autocommit=True)
    try:
        claim_usernames(first.cursor(), ["alice", "bob"])
        claim_usernames(other.cursor(), ["carol"])  # another name: no wait
        other.commit()
        seen: list[set[str]] = []

        def second_batch() -> None:
            cur = second.cursor()
            claim_usernames(cur, ["alice"])
            seen.append({r[0] for r in cur.execute("SELECT lower(username) FROM auth_user")})
            release_usernames(cur, ["alice"])
            second.commit()

        thread = threading.Thread(target=second_batch)
        thread.start()
        pid = second.info.backend_pid
        for _ in range(500):
            if _waits_on_a_lock(watch, pid):
                break
            time.sleep(0.01)
        assert _waits_on_a_lock(watch, pid)
        assert not seen
        first.execute(
            "INSERT INTO auth_user (password, username, first_name, email, is_staff, "
            "is_active, is_superuser, is_managed, is_sentry_app, is_password_expired, "
            "date_joined, flags, is_unclaimed) VALUES ('x', 'Alice', '', '', false, true, "
            "false, false, false, false, now(), 0, false)"
        )
        release_usernames(first.cursor(), ["alice", "bob"])
        first.commit()
        thread.join(timeout=30)
        assert seen == [{"alice"}]
        assert watch.execute("SELECT count(*) FROM relocate_username_claim").fetchone() == (1,)
        assert watch.execute("SELECT key FROM relocate_username_claim").fetchone() == ("carol",)
    finally:
        for conn in (first, second, other, watch):
            conn.close()


@pytest.mark.parametrize("existing, imported", [("Admin", "admin"), ("owner", "OWNER")])
def test_13_07_case_only_collision_merges_with_merge_users(db_dsn, tmp_path, existing, imported):
    """With ``--merge-users`` a collision ignoring case maps the row to the existing user
    (Sentry merges on its exact pre-check in ``User.write_relocation_import``,
    src/sentry/users/models/user.py)."""
    existing_id = add_user(db_dsn, existing)
    rows = [user(1, imported, "imported@example.com"), userpermission(1, 1)]
    src = write_export(tmp_path / "u.json", rows)
    run = import_export(db_dsn, "config", src, "--merge-users")
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT id, username FROM auth_user") == [(existing_id, existing)]
    assert query(
        db_dsn, "SELECT new_pk, kind FROM relocate_pk_map WHERE model = 'sentry.user'"
    ) == [(existing_id, "Existing")]
    assert count(db_dsn, "sentry_userpermission") == 0  # dropped with the merged user


BLANK_USERS = {
    "empty": {"username": ""},
    "spaces": {"username": "   "},
    "tab_newline": {"username": "\t\n"},
    "missing": {"username": None},  # removed from the row below
}


@pytest.mark.parametrize("variant", sorted(BLANK_USERS))
def test_13_07_blank_username_is_a_validation_error(db_dsn, tmp_path, variant):
    """The serializer's CharField rejects a blank username ("This field may not be
    blank.", src/sentry/users/api/endpoints/user_details.py via DRF): a finding, no
    fallback to the email, nothing written."""
    bad = user(2, "placeholder", "blank@example.com")
    if variant == "missing":
        del bad["fields"]["username"]
    else:
        bad["fields"].update(BLANK_USERS[variant])
    run, findings = run_with_findings(db_dsn, "users", [user(1, "fine"), bad], tmp_path)
    assert run.code == 1
    (finding,) = findings
    assert finding["kind"] == "ValidationError"
    assert finding["on"] == {"model": "sentry.user", "ordinal": 2}
    assert finding["left_pk"] == 2
    assert "This field may not be blank." in finding["reason"]
    assert count(db_dsn, "auth_user") == 0


@pytest.mark.parametrize("scope", ["users", "config"])
def test_13_07_invalid_user_fixture_is_a_validation_error(db_dsn, fixtures_dir, tmp_path, scope):
    """Sentry's ``invalid-user.json`` (no username): its own test expects the import to
    fail with a ValidationError on ``sentry.user``."""
    findings = tmp_path / "findings.json"
    run = import_export(
        db_dsn, scope, fixtures_dir / "invalid-user.json", "--findings-file", str(findings)
    )
    assert run.code == 1
    (finding,) = findings_of(findings)
    assert (finding["kind"], finding["on"]["model"]) == ("ValidationError", "sentry.user")
    assert "This field may not be blank." in finding["reason"]
    assert count(db_dsn, "auth_user") == 0


# ----------------------------------------------------------------------------------------
# Point 8: the suffix plan of ``unique_db_instance``.


def _candidates(base: str, max_length: int = 128) -> list[str]:
    """Every candidate tried when all are taken."""
    tried: list[str] = []
    assert first_free(base, max_length, lambda c: tried.append(c) is None) is None
    return tried


def test_13_08_suffix_plan_sizes_and_alphabet():
    """``unique_db_instance`` (src/sentry/db/models/utils.py): the base, then 1 suffix of
    2 characters, 5 of 3, 20 of 5 and 1 of 12 (28 tries), from its alphabet."""
    tried = _candidates("taken")
    assert tried[0] == "taken"
    suffixes = [c.split("-", 1)[1] for c in tried[1:]]
    assert [len(s) for s in suffixes] == [2] + [3] * 5 + [5] * 20 + [12]
    assert all(set(s) <= set(SUFFIX_ALPHABET) for s in suffixes)
    assert "8" not in SUFFIX_ALPHABET and SUFFIX_ALPHABET.count("0") == 2


@pytest.mark.parametrize(
    "base, first",
    [
        ("  padded  ", "padded"),  # stripped
        ("\tname\n", "name"),
        ("12345", None),  # all digits: always suffixed
        ("\uff11\uff12", None),  # fullwidth digits are decimal too
        ("x\u00b2", "x\u00b2"),  # a superscript is a digit but not decimal
        ("\u00b2", "\u00b2"),
    ],
)
def test_13_08_base_is_stripped_and_decimal_bases_suffixed(base, first):
    tried = _candidates(base)
    stem = base.strip()
    if first is None:
        assert all(c.startswith(stem + "-") for c in tried)
        assert len(tried) == 27
    else:
        assert tried[0] == first and len(tried) == 28
        assert all(c.startswith(first + "-") for c in tried[1:])


@pytest.mark.parametrize("base", ["", "   ", "\t"])
def test_13_08_empty_base_becomes_12_hex_characters(base):
    first = next(unique_candidates(base, 128))
    # 12 hex characters; all-digit ones (rarely) go straight to a suffix.
    assert re.fullmatch("[0-9a-f]{12}(-[a-z0-79]{2})?", first), first


def test_13_08_suffix_cut_to_the_length_limit():
    tried = _candidates("x" * 200, max_length=128)
    assert tried[0] == "x" * 128
    assert all(len(c) == 128 for c in tried)


@pytest.mark.parametrize(
    "existing, imported, pattern",
    [
        ("12345", "12345", r"12345-[a-z0-79]{2}"),
        (" spaced ", " spaced ", r"spaced"),
        ("abc", "abc", r"abc-[a-z0-79]{2}"),
    ],
)
def test_13_08_renamed_users_in_the_target(db_dsn, tmp_path, existing, imported, pattern):
    """End to end: the first free candidate of the plan is the new username."""
    add_user(db_dsn, existing)
    run = import_export(db_dsn, "users", write_export(tmp_path / "u.json", [user(1, imported)]))
    assert run.code == 0, run.err
    renamed = scalar(db_dsn, "SELECT username FROM auth_user ORDER BY id DESC LIMIT 1")
    assert re.fullmatch(pattern, renamed), renamed


# ----------------------------------------------------------------------------------------
# Point 9: guids and uuids always new; API tokens on a collision.


@pytest.mark.parametrize("scope", ["organizations", "global"])
def test_13_09_monitor_guid_is_always_regenerated(db_dsn, tmp_path, scope):
    """``Monitor.normalize_before_relocation_import`` (src/sentry/monitors/models.py) sets
    ``guid = uuid4()`` for every monitor, colliding or not."""
    guids = ["7fc72b8e-3f87-43c9-9e6d-85d7f61d4a37", "00000000-0000-4000-8000-000000000001"]
    rows = [org(1, "o"), project(2, 1, "p"), monitor(3, 1, 2, guids[0]),
            monitor(4, 1, 2, guids[1])]  # fmt: skip
    run = import_export(db_dsn, scope, write_export(tmp_path / "m.json", rows))
    assert run.code == 0, run.err
    stored = [r[0] for r in query(db_dsn, "SELECT guid::text FROM sentry_monitor")]
    assert len(stored) == 2 and not set(stored) & set(guids) and len(set(stored)) == 2


def test_13_09_incident_detection_uuid_regenerated_when_set(db_dsn, tmp_path):
    """``Incident.normalize_before_relocation_import`` (src/sentry/incidents/models/
    incident.py): ``if self.detection_uuid: self.detection_uuid = uuid4()``."""
    given = "11111111-2222-4333-8444-555555555555"
    rows = [org(1, "o"), snubaquery(2), alertrule(3, 1, 2),
            incident(4, 1, 3, given), incident(5, 1, 3, None)]  # fmt: skip
    run = import_export(db_dsn, "global", write_export(tmp_path / "i.json", rows))
    assert run.code == 0, run.err
    (new_uuid, none) = [
        r[0]
        for r in query(
            db_dsn, "SELECT detection_uuid::text FROM sentry_incident ORDER BY identifier"
        )
    ]
    assert new_uuid is not None and new_uuid != given
    assert none is None


T_EXISTING = "sntryu_" + "e" * 64
R_EXISTING = "f" * 64
EXPIRES = "2030-01-01T00:00:00.000Z"

API_TOKEN_CASES = {
    # name: (token, refresh token, expires_at) -> collides?
    "token_taken": ("sntryu_" + "e" * 64, "1" * 64, EXPIRES),
    "refresh_taken": ("sntryu_" + "2" * 64, R_EXISTING, EXPIRES),
    "token_taken_no_refresh_no_expiry": ("sntryu_" + "e" * 64, None, None),
    "free": ("sntryu_" + "3" * 64, "4" * 64, EXPIRES),
}


@pytest.mark.parametrize("case", sorted(API_TOKEN_CASES))
def test_13_09_api_token_collision_regenerates_both_and_expiry(db_dsn, tmp_path, case):
    """``ApiToken.write_relocation_import`` (src/sentry/models/apitoken.py): a row whose
    ``token``, or non-null ``refresh_token``, is taken gets a new token, a new refresh
    token only if it had one, and a non-null ``expires_at`` becomes now + 30 days."""
    first = [user(1, "a"), apitoken(1, 1, T_EXISTING, R_EXISTING, EXPIRES)]
    assert import_export(db_dsn, "config", write_export(tmp_path / "1.json", first)).code == 0
    token, refresh, expires = API_TOKEN_CASES[case]
    second = [user(1, "b"), apitoken(1, 1, token, refresh, expires)]
    run = import_export(db_dsn, "config", write_export(tmp_path / "2.json", second))
    assert run.code == 0, run.err
    (new,) = query(
        db_dsn,
        "SELECT token, refresh_token, expires_at, hashed_token, token_last_characters "
        "FROM sentry_apitoken WHERE user_id = (SELECT max(id) FROM auth_user)",
    )
    new_token, new_refresh, new_expires, hashed, last = new
    if case == "free":
        assert (new_token, new_refresh) == (token, refresh)
        assert new_expires == datetime(2030, 1, 1, tzinfo=timezone.utc)
        return
    assert new_token not in (token, T_EXISTING) and new_token.startswith("sntryu_")
    assert last == new_token[-4:] and len(hashed) == 64
    if refresh is None:
        assert new_refresh is None and new_expires is None
    else:
        assert new_refresh not in (refresh, R_EXISTING, None)
        in_30_days = datetime.now(timezone.utc) + timedelta(days=30)
        assert abs((new_expires - in_30_days).total_seconds()) < 600


# ----------------------------------------------------------------------------------------
# Point 10: user options.


USER_OPTIONS = [
    ("language", '"en"', None),
    ("language", '"pt-br"', None),
    ("language", '"xx"', '"xx" is not a valid choice.'),
    ("language", '"EN"', '"EN" is not a valid choice.'),
    ("theme", '"dark"', None),
    ("theme", '"system"', None),
    ("theme", '"blue"', '"blue" is not a valid choice.'),
    ("theme", "null", "This field may not be null."),
    ("timezone", '"Europe/Vienna"', None),
    ("timezone", '"MiddleEarth/Gondor"', '"MiddleEarth/Gondor" is not a valid choice.'),
    ("stacktrace_order", '"7"', None),  # camelCase in the serializer: not checked
    ("clock_24_hours", '"not a bool"', None),
]


@pytest.mark.parametrize("key, value, problem", USER_OPTIONS)
def test_13_10_user_option_validation(key, value, problem):
    """``UserOption.write_relocation_import`` (src/sentry/users/models/user_option.py)
    validates ``{key: value}`` with ``UserOptionsSerializer``
    (src/sentry/users/api/endpoints/user_details.py): ``language``, ``timezone`` and
    ``theme`` are ChoiceFields; the other stored keys meet no (camelCase) field. The rule
    as a plain function; the two imports below show it at work."""
    option = Converted("sentry.useroption", 1, 5, {"user_id": 1, "key": key, "value": value})
    settings = ImportSettings(scope="users", import_uuid="u", run_id="r", dsn="")
    if problem is None:
        UserOptionHandler().validate(option, settings)
        return
    with pytest.raises(RowInvalid) as raised:
        UserOptionHandler().validate(option, settings)
    assert f"'{key}': ['{problem}']" in str(raised.value)


def test_13_10_valid_user_options_import(db_dsn, tmp_path):
    valid = [(k, v) for k, v, problem in USER_OPTIONS if problem is None]
    # A user each: a second global option of one user and key would be dropped (13.10).
    rows = [user(1 + i, f"opt{i}") for i in range(len(valid))]
    rows += [useroption(5 + i, 1 + i, k, v) for i, (k, v) in enumerate(valid)]
    run, findings = run_with_findings(db_dsn, "users", rows, tmp_path)
    assert run.code == 0, run.err
    assert findings == []
    stored = query(db_dsn, "SELECT key, value FROM sentry_useroption ORDER BY id")
    assert stored == valid


def test_13_10_invalid_user_options_are_findings(db_dsn, tmp_path):
    invalid = [(k, v, p) for k, v, p in USER_OPTIONS if p is not None]
    rows = [user(1, "opt")] + [useroption(5 + i, 1, k, v) for i, (k, v, _) in enumerate(invalid)]
    run, findings = run_with_findings(db_dsn, "users", rows, tmp_path)
    assert run.code == 1
    by_pk = {f["left_pk"]: f for f in findings}
    assert sorted(by_pk) == [5 + i for i in range(len(invalid))]
    for i, (key, _, problem) in enumerate(invalid):
        finding = by_pk[5 + i]
        assert (finding["kind"], finding["on"]["model"]) == ("ValidationError", "sentry.useroption")
        assert f"'{key}': ['{problem}']" in finding["reason"]
    assert count(db_dsn, "auth_user") == 0


def test_13_10_second_global_option_is_skipped(db_dsn, tmp_path):
    """A global option (no project, no organization) whose (user, key) exists makes
    ``UserOption.write_relocation_import`` return None: the first one stays."""
    report = tmp_path / "report.json"
    rows = [
        user(1, "opt"),
        user(2, "other"),
        useroption(1, 1, "timezone", '"Europe/Vienna"'),
        useroption(2, 1, "timezone", '"Europe/Berlin"'),
        useroption(3, 1, "language", '"de"'),
        useroption(4, 2, "timezone", '"UTC"'),
        useroption(5, 1, "timezone", '"Asia/Tokyo"'),
    ]
    src = write_export(tmp_path / "o.json", rows)
    run = import_export(db_dsn, "users", src, "--report-file", str(report))
    assert run.code == 0, run.err
    options = query(
        db_dsn,
        "SELECT u.username, o.key, o.value FROM sentry_useroption o "
        "JOIN auth_user u ON u.id = o.user_id ORDER BY 1, 2",
    )
    assert options == [
        ("opt", "language", '"de"'),
        ("opt", "timezone", '"Europe/Vienna"'),
        ("other", "timezone", '"UTC"'),
    ]
    dropped = [
        (r["model"], r["source_pk"])
        for r in json.loads(report.read_text())["rows"]
        if r["action"] == "dropped"
    ]
    assert sorted(dropped) == [("sentry.useroption", "2"), ("sentry.useroption", "5")]


# ----------------------------------------------------------------------------------------
# Point 11: Email, UserEmail, UserIP.


@pytest.mark.parametrize(
    "scope, flags", [("users", ()), ("config", ()), ("users", ("--filter-usernames", "owner"))]
)
def test_13_11_every_new_useremail_creates_its_email(db_dsn, tmp_path, scope, flags):
    """Receiver ``create_email`` (post_save UserEmail, src/sentry/receivers/email.py):
    every UserEmail created gets its Email row, whether or not the export has one."""
    rows = [
        user(1, "owner", "owner@example.com"),
        user(2, "other", "other@example.com"),
        useremail(1, 1, "owner@example.com"),
        useremail(2, 1, "second@example.com"),
        useremail(3, 1, "Third@Example.com"),
        useremail(4, 2, "other@example.com"),
    ]
    run = import_export(db_dsn, scope, write_export(tmp_path / "e.json", rows), *flags)
    assert run.code == 0, run.err
    expected = ["owner@example.com", "second@example.com", "Third@Example.com"]
    if not flags:
        expected.append("other@example.com")
    emails = [r[0] for r in query(db_dsn, "SELECT email FROM sentry_email")]
    assert sorted(emails) == sorted(expected)
    useremails = [r[0] for r in query(db_dsn, "SELECT email FROM sentry_useremail")]
    assert sorted(useremails) == sorted(expected)


@pytest.mark.parametrize(
    "scope, flags", [("users", ()), ("global", ()), ("users", ("--filter-usernames", "app"))]
)
def test_13_11_empty_email_gets_useremail_and_email(db_dsn, tmp_path, scope, flags):
    """Receiver ``create_user_email`` (src/sentry/receivers/useremail.py) creates
    ``UserEmail(email=user.email)`` with no emptiness check, and ``create_email`` its
    Email: an app user with an empty email has both, filtered imports included."""
    rows = [user(1, "app", ""), user(2, "person", "person@example.com")]
    run = import_export(db_dsn, scope, write_export(tmp_path / "e.json", rows), *flags)
    assert run.code == 0, run.err
    app_id = scalar(db_dsn, "SELECT id FROM auth_user WHERE username = 'app'")
    assert query(db_dsn, "SELECT email FROM sentry_useremail WHERE user_id = %s", (app_id,)) == [
        ("",)
    ]
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_email WHERE email = ''") == 1


def test_13_11_existing_email_takes_the_imported_date(db_dsn, tmp_path):
    """``Email.write_relocation_import`` (src/sentry/users/models/email.py):
    ``get_or_create`` by address, then the imported row is saved onto the one found, so
    an address already in the target takes the imported ``date_added`` (and spelling)."""
    with psycopg.connect(db_dsn) as conn:
        (old_id,) = conn.execute(
            "INSERT INTO sentry_email (email, date_added) VALUES "
            "('Known@Example.com', '2001-01-01T00:00:00Z') RETURNING id"
        ).fetchone()
    rows = [user(1, "u", "known@example.com"), email(1, "known@example.com"), email(2, "new@x.io")]
    run = import_export(db_dsn, "users", write_export(tmp_path / "e.json", rows))
    assert run.code == 0, run.err
    imported = datetime(2023, 6, 22, 22, 59, 55, 488000, tzinfo=timezone.utc)
    assert query(
        db_dsn, "SELECT id, email, date_added FROM sentry_email WHERE id = %s", (old_id,)
    ) == [(old_id, "known@example.com", imported)]
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_email") == 2
    assert query(
        db_dsn, "SELECT kind, new_pk FROM relocate_pk_map WHERE model = 'sentry.email' "
        "AND old_pk = 1"
    ) == [("Existing", old_id)]  # fmt: skip


def test_13_11_duplicate_user_ip_takes_the_later_times(db_dsn, tmp_path):
    """``UserIP.write_relocation_import`` (src/sentry/users/models/userip.py):
    ``get_or_create(user, ip_address)`` then the current row's ``first_seen`` and
    ``last_seen`` are saved: the later row of one (user, ip) decides the times."""
    first = userip(1, 1, "8.8.8.8")
    later = userip(2, 1, "8.8.8.8")
    later["fields"].update(
        first_seen="2019-01-01T00:00:00.000Z", last_seen="2020-02-02T00:00:00.000Z"
    )
    other = userip(3, 1, "1.1.1.1")
    rows = [user(1, "ip"), first, later, other]
    run = import_export(db_dsn, "global", write_export(tmp_path / "ip.json", rows))
    assert run.code == 0, run.err
    ips = query(
        db_dsn, "SELECT host(ip_address), first_seen, last_seen FROM sentry_userip ORDER BY 1"
    )
    kept = datetime(2012, 4, 5, 3, 29, 45, tzinfo=timezone.utc)
    assert ips == [
        ("1.1.1.1", kept, kept),
        (
            "8.8.8.8",
            datetime(2019, 1, 1, tzinfo=timezone.utc),
            datetime(2020, 2, 2, tzinfo=timezone.utc),
        ),
    ]


@pytest.mark.parametrize("batch_size", ["1000", "2"])
def test_13_11_one_address_however_written_is_one_user_ip_in_a_batch_or_across(
    db_dsn, tmp_path, batch_size
):
    """PostgreSQL's inet takes ``1.2.3.4/32`` for ``1.2.3.4``: the get-or-create finds the
    row of an earlier row of the same batch (batch size 1000) or of an earlier batch (2)
    whichever way the address was written, and the last row's times stay."""
    rows = [user(1, "ip")]
    for pk, address, year in ((1, "1.2.3.4/32", 2015), (2, "9.9.9.9", 2016), (3, "1.2.3.4", 2017)):
        row = userip(pk, 1, address)
        row["fields"].update(
            first_seen=f"{year}-01-01T00:00:00Z", last_seen=f"{year}-06-01T00:00:00Z"
        )
        rows.append(row)
    path = write_export(tmp_path / "ip.json", rows)
    run = import_export(db_dsn, "global", path, "--batch-size", batch_size)
    assert run.code == 0, run.err
    ips = query(db_dsn, "SELECT id, host(ip_address), first_seen FROM sentry_userip ORDER BY 2")
    assert [(ip[1], ip[2].year) for ip in ips] == [("1.2.3.4", 2017), ("9.9.9.9", 2016)]
    ledger = query(
        db_dsn,
        "SELECT old_pk, new_pk, kind FROM relocate_pk_map WHERE model = 'sentry.userip' "
        "ORDER BY old_pk",
    )
    assert ledger == [
        (1, ips[0][0], "Inserted"),
        (2, ips[1][0], "Inserted"),
        (3, ips[0][0], "Inserted"),
    ]


# ----------------------------------------------------------------------------------------
# Point 12: what a project's post_save creates; project key labels.


@pytest.mark.parametrize("scope", ["organizations", "global"])
def test_13_12_project_gets_its_post_save_options(db_dsn, tmp_path, scope):
    """Receivers of ``post_save(Project)`` (src/sentry/receivers/core.py,
    ``freeze_option_epoch_for_project``; ``update_rev_for_option`` in
    src/sentry/projectoptions/manager.py) write ``sentry:relay-rev``,
    ``sentry:relay-rev-lastchange`` and ``sentry:option-epoch``; an imported option of
    the same key is saved onto it (``ProjectOption.write_relocation_import``,
    src/sentry/models/options/project_option.py)."""
    rows = [
        org(1, "o"),
        project(2, 1, "bare"),
        project(3, 1, "configured"),
        projectoption(1, 3, "sentry:option-epoch", 9),
        projectoption(2, 3, "sentry:origins", '["*"]'),
        projectoption(3, 3, "sentry:relay-rev", '"0123456789abcdef0123456789abcdef"'),
    ]
    run = import_export(db_dsn, scope, write_export(tmp_path / "p.json", rows))
    assert run.code == 0, run.err
    options: dict[str, dict[str, str]] = {}
    for slug, key, value in query(
        db_dsn,
        "SELECT p.slug, o.key, o.value FROM sentry_projectoptions o "
        "JOIN sentry_project p ON p.id = o.project_id",
    ):
        options.setdefault(slug, {})[key] = value
    bare, configured = options["bare"], options["configured"]
    assert set(bare) == {"sentry:relay-rev", "sentry:relay-rev-lastchange", "sentry:option-epoch"}
    assert re.fullmatch('"[0-9a-f]{32}"', bare["sentry:relay-rev"])
    stamp = json.loads(bare["sentry:relay-rev-lastchange"])
    changed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert recent(changed)
    assert bare["sentry:option-epoch"] == "12"
    assert set(configured) == set(bare) | {"sentry:origins"}
    assert configured["sentry:option-epoch"] == "9"
    assert configured["sentry:relay-rev"] == '"0123456789abcdef0123456789abcdef"'
    # Imported options map to the rows the receivers wrote (Sentry reports them Inserted).
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_projectoptions") == 7
    assert query(
        db_dsn,
        "SELECT DISTINCT kind FROM relocate_pk_map WHERE model = 'sentry.projectoption'",
    ) == [("Inserted",)]


@pytest.mark.parametrize("label", ["", None, "missing"])
def test_13_12_project_key_without_label_gets_a_petname(db_dsn, tmp_path, label):
    """``ProjectKey.save`` (src/sentry/models/projectkey.py): an empty label becomes
    ``petname.generate(2, " ", letters=10).title()``. Every exported key stays a row."""
    key = projectkey(1, 2, label=label)
    if label == "missing":
        del key["fields"]["label"]
    rows = [org(1, "o"), project(2, 1, "p"), key, projectkey(2, 2, label="Browser")]
    run = import_export(db_dsn, "organizations", write_export(tmp_path / "k.json", rows))
    assert run.code == 0, run.err
    labels = [r[0] for r in query(db_dsn, "SELECT label FROM sentry_projectkey ORDER BY id")]
    assert len(labels) == 2 and labels[1] == "Browser"
    assert re.fullmatch(r"[A-Z][a-z]{1,9} [A-Z][a-z]{1,9}", labels[0]), labels[0]


# ----------------------------------------------------------------------------------------
# Legacy 23.7.x exports: users named by natural key.


LEGACY_CASES = {
    # scope: rows (user pk 1 "name@example.com", pk 2 "second")
    "users": [
        useremail(1, 1, "name@example.com"),
        useroption(1, 1, "timezone", '"Europe/Vienna"'),
        useroption(2, 2, "language", '"de"'),
    ],
    "config": [userpermission(1, 1), apitoken(1, 2, "sntryu_" + "a" * 64)],
    "global": [
        userip(1, 1, "8.8.8.8"),
        row("sentry.authenticator", 1, user=2, type=1, config={}, created_at=TS,
            last_used_at=None),
    ],
}  # fmt: skip


def test_13_a_username_names_the_first_user_of_that_name():
    """Two users of one name in an export: the natural key names the lowest pk."""
    from relocate.logic.admission import first_pk_of_username

    pairs = [("alice", 7), ("bob", 2), ("alice", 3), ("alice", 9)]
    assert first_pk_of_username(pairs) == {"alice": 3, "bob": 2}
    assert first_pk_of_username([]) == {}


@pytest.mark.parametrize("scope", sorted(LEGACY_CASES))
def test_13_legacy_natural_key_users_are_resolved(db_dsn, tmp_path, scope):
    """23.7.x's ``sentry export`` (src/sentry/runner/commands/backup.py) serialised with
    ``use_natural_foreign_keys=True``: a user reference is ``User.natural_key()``,
    ``[username]`` (Django's ``AbstractBaseUser``). It resolves against the export's own
    users, as Django's ``get_by_natural_key`` (``username=``, exact) would."""
    rows = _natural_keys(
        [user(1, "name@example.com"), user(2, "second"), user(3, "Name@Example.com")]
        + LEGACY_CASES[scope],
        ("user",),
    )
    run = import_export(db_dsn, scope, write_export(tmp_path / "legacy.json", rows))
    assert run.code == 0, run.err
    ids = dict(query(db_dsn, "SELECT username, id FROM auth_user"))
    owners = {
        "users": ("sentry_useroption", [ids["name@example.com"], ids["second"]]),
        "config": ("sentry_userpermission", [ids["name@example.com"]]),
        "global": ("sentry_userip", [ids["name@example.com"]]),
    }
    table, expected = owners[scope]
    assert sorted(r[0] for r in query(db_dsn, f"SELECT user_id FROM {table}")) == sorted(expected)
    if scope == "config":
        assert query(db_dsn, "SELECT user_id FROM sentry_apitoken") == [(ids["second"],)]
    if scope == "global":
        assert query(db_dsn, "SELECT user_id FROM auth_authenticator") == [(ids["second"],)]


@pytest.mark.parametrize(
    "reference", [["nobody@example.com"], ["NAME@EXAMPLE.COM"], ["name@example.com "]]
)
def test_13_legacy_unknown_username_is_a_finding(db_dsn, tmp_path, reference):
    """A name no user of the export has: a finding that names it, nothing written."""
    rows = [user(1, "name@example.com"), useremail(1, 1, "name@example.com"),
            useroption(7, 1, "timezone", '"UTC"')]  # fmt: skip
    rows[2]["fields"]["user"] = reference
    run, findings = run_with_findings(db_dsn, "users", rows, tmp_path)
    assert run.code == 1
    (finding,) = findings
    assert finding["kind"] == "ValidationError"
    assert finding["on"] == {"model": "sentry.useroption", "ordinal": 1}
    assert finding["left_pk"] == 7
    assert repr(reference[0]) in finding["reason"] and "`user`" in finding["reason"]
    assert "no sentry.user of the export has that username" in finding["reason"]
    assert count(db_dsn, "auth_user") == 0


def _export_23_7() -> list[dict]:
    """Rows shaped as Sentry's own 23.7.1 export fixture (getsentry/sentry
    fixtures/backup/23.7.1.json): every foreign key to ``sentry.user`` that was a Django
    ``ForeignKey`` then (``user``, ``owner``, ``proxy_user``, ``creator_user``) holds
    ``[username]``; the hybrid-cloud ones (``user_id``, ``owner_id``, ``created_by_id``)
    already held the pk. ``sites.site``, ``sentry.actor`` and the organization mapping are
    there too, and scope lists are Python-literal strings."""
    app_user = "test_app-4d6ae6ac-c652-4de0-bca0-a379430c0151"
    return [
        row("sites.site", 1, domain="example.com", name="example.com"),
        row("sentry.actor", 1, type=0, user_id=None, team=None),
        user(1, "user@example.com"),
        user(2, "admin@localhost"),
        user(3, app_user, email="", is_sentry_app=True),
        row("sentry.organization", 1, name="test_org", slug="test-org", status=0,
            date_added=TS, default_role="member", is_test=False, flags="1"),
        row("sentry.organizationmapping", 1, organization_id=1, slug="test-org",
            name="test_org", date_created=TS, customer_id=None, verified=False,
            idempotency_key="", region_name="--monolith--", status=0),
        row("sentry.authprovider", 1, organization_id=1, provider="sentry", config={},
            date_added=TS, sync_time=None, last_sync=None, default_role=50,
            default_global_access=True, flags="0"),
        useremail(1, 1, "user@example.com"),
        userip(1, 1, "127.0.0.2"),
        userpermission(1, 1),
        row("sentry.userrole", 1, date_updated=TS, date_added=TS, name="test-role",
            permissions="[]"),
        row("sentry.userroleuser", 1, date_updated=TS, date_added=TS, user=1, role=1),
        row("sentry.authidentity", 1, user=1, auth_provider=1, ident="123456789",
            data={"key1": "value1"}, last_verified=TS, last_synced=TS, date_added=TS),
        row("sentry.authenticator", 1, user=1, created_at=TS, last_used_at=None, type=1,
            config='""'),
        row("sentry.apiapplication", 1, client_id="a" * 64, client_secret="b" * 64,
            owner=3, name="Relevant Bream", status=0, allowed_origins="",
            redirect_uris="", homepage_url=None, privacy_url=None, terms_url=None,
            date_added=TS),
        row("sentry.apiapplication", 2, client_id="c" * 64, client_secret="d" * 64,
            owner=1, name="test", status=0, allowed_origins=None,
            redirect_uris="http://example.com", homepage_url=None, privacy_url=None,
            terms_url=None, date_added=TS),
        useroption(1, 1, "timezone", '"Europe/Vienna"'),
        row("sentry.apiauthorization", 1, scopes="0", scope_list="[]", application=2,
            user=1, date_added=TS),
        row("sentry.apitoken", 1, scopes="0", scope_list="[]", application=1, user=3,
            token="e" * 64, refresh_token="f" * 64, expires_at=None, date_added=TS),
        row("sentry.organizationmember", 1, organization=1, user_id=2, email=None,
            role="owner", flags="0", token=None, date_added=TS, token_expires_at=None,
            has_global_access=True, inviter_id=None, invite_status=0, type=50,
            user_is_active=True, user_email="admin@localhost"),
        row("sentry.sentryapp", 1, date_deleted=None, scopes="0", scope_list="[]",
            application=1, proxy_user=3, owner_id=1, name="test_app", slug="test_app",
            author="A Company", status=0, uuid="f71b2f6b-0f10-4d6f-b9c9-bf873c641ac7",
            redirect_url=None, webhook_url="https://example.com/webhook",
            is_alertable=False, verify_install=True, events="[]", overview=None,
            schema={}, date_added=TS, date_updated=TS, date_published=None,
            creator_user=2, creator_label="admin@localhost", popularity=1),
    ]  # fmt: skip


def _natural_keys(rows: list[dict], fields: tuple[str, ...]) -> list[dict]:
    """``rows`` with each integer reference in ``fields`` written as ``[username]``."""
    names = {r["pk"]: r["fields"]["username"] for r in rows if r["model"] == "sentry.user"}
    out = []
    for r in rows:
        changed = {
            f: [names[v]]
            for f, v in r["fields"].items()
            if f in fields and r["model"] != "sentry.user" and isinstance(v, int)
        }
        out.append({**r, "fields": {**r["fields"], **changed}})
    return out


@pytest.mark.parametrize("runner", [(), TWO_WORKERS], ids=["in-process", "two-workers"])
def test_13_legacy_23_7_export_imports_every_user_reference(db_dsn, tmp_path, runner):
    """A 23.7-shaped export in Global scope: every natural-key user reference (user,
    owner, proxy_user, creator_user) and every hybrid-cloud ``*_id`` lands on the user of
    the export it named. With two workers, two readers share the rows, and the reader
    that emits the users' pairs is not the one that emits every user."""
    rows = _natural_keys(_export_23_7(), ("user", "owner", "proxy_user", "creator_user"))
    assert rows[8]["fields"]["user"] == ["user@example.com"]  # the shape under test
    src = write_export(tmp_path / "23.7.json", rows)
    run = import_export(db_dsn, "global", src, *runner)
    assert run.code == 0, run.err
    ids = dict(query(db_dsn, "SELECT username, id FROM auth_user"))
    first, admin = ids["user@example.com"], ids["admin@localhost"]
    app_user = ids["test_app-4d6ae6ac-c652-4de0-bca0-a379430c0151"]
    expected = {
        "SELECT user_id FROM sentry_useremail WHERE email = 'user@example.com'": first,
        "SELECT user_id FROM sentry_userip": first,
        "SELECT user_id FROM sentry_userpermission": first,
        "SELECT user_id FROM sentry_userrole_users": first,
        "SELECT user_id FROM sentry_authidentity": first,
        "SELECT user_id FROM auth_authenticator": first,
        "SELECT user_id FROM sentry_useroption": first,
        "SELECT user_id FROM sentry_apiauthorization": first,
        "SELECT user_id FROM sentry_apitoken": app_user,
        "SELECT owner_id FROM sentry_apiapplication WHERE name = 'Relevant Bream'": app_user,
        "SELECT owner_id FROM sentry_apiapplication WHERE name = 'test'": first,
        "SELECT proxy_user_id FROM sentry_sentryapp": app_user,
        "SELECT creator_user_id FROM sentry_sentryapp": admin,
        "SELECT owner_id FROM sentry_sentryapp": first,
        "SELECT user_id FROM sentry_organizationmember": admin,
    }
    found = {sql: scalar(db_dsn, sql) for sql in expected}
    assert found == expected
