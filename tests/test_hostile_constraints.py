"""Rows that break a constraint of the target which the field checks do not see (issue 16).

A CHECK constraint (``avatar_type >= 0``, ``"order" >= 0``, a monitor owned by a user *and*
a team), NOT NULL, a length limit, or a unique set repeated inside the export: each is a
ValidationError finding that names the model, the row's ordinal and pk and the constraint,
raised before the first write, so the target afterwards holds nothing of the import.
Duplicates that Sentry's rules resolve (usernames, organization slugs, config rows, emails)
still import. A failure only the write can meet (a unique index the export cannot be
checked against) says exactly which stages and models the target holds, and how to resume
or roll back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from .helpers import (
    TS,
    import_export,
    member,
    option,
    project_name_taken,
    query,
    row,
    scalar,
    user,
    write_export,
)

TABLES_AFTER_A_FINDING = (
    "auth_user",
    "sentry_organization",
    "sentry_team",
    "sentry_project",
    "sentry_organizationmember",
    "sentry_dashboard",
    "sentry_dashboardwidget",
    "sentry_monitor",
    "relocate_pk_map",
    "relocate_side_effect",
)


def org(pk: int, slug: str) -> dict:
    return row(
        "sentry.organization",
        pk,
        name=slug,
        slug=slug,
        status=0,
        date_added=TS,
        default_role="member",
        flags="1",
        is_test=False,
    )


def team(pk: int, org_pk: int, slug: str, **fields: Any) -> dict:
    base = dict(
        organization=org_pk, slug=slug, name=slug, status=0, idp_provisioned=False, date_added=TS
    )
    return row("sentry.team", pk, **{**base, **fields})


def project(pk: int, org_pk: int, slug: str, **fields: Any) -> dict:
    base = dict(
        slug=slug,
        name=slug,
        forced_color=None,
        organization=org_pk,
        public=False,
        date_added=TS,
        status=0,
        first_event=None,
        flags="10",
        platform=None,
    )
    return row("sentry.project", pk, **{**base, **fields})


def dashboard(pk: int, org_pk: int, user_pk: int, title: str) -> dict:
    return row(
        "sentry.dashboard",
        pk,
        created_by_id=user_pk,
        date_added=TS,
        filters=None,
        last_visited=TS,
        organization=org_pk,
        title=title,
        visits=1,
    )


def widget(pk: int, dashboard_pk: int, order: int) -> dict:
    return row(
        "sentry.dashboardwidget",
        pk,
        dashboard=dashboard_pk,
        date_added=TS,
        description=None,
        detail=None,
        discover_widget_split=None,
        display_type=0,
        interval=None,
        limit=None,
        order=order,
        thresholds=None,
        title=f"widget {pk}",
        widget_type=0,
    )


def monitor(pk: int, org_pk: int, project_pk: int, slug: str, **owners: Any) -> dict:
    fields = dict(
        config={"schedule": "* * * * *", "schedule_type": 1},
        date_added=TS,
        guid=f"7fc72b8e-3f87-43c9-9e6d-85d7f61d4a{pk:02d}",
        is_muted=False,
        name=slug,
        organization_id=org_pk,
        owner_team_id=None,
        owner_user_id=None,
        project_id=project_pk,
        slug=slug,
        status=0,
        type=3,
    )
    fields.update(owners)
    return row("sentry.monitor", pk, **fields)


def tenant() -> list[dict]:
    """One organization with two users (members), a team, a project and a dashboard."""
    return [
        user(1, "alice"),
        user(2, "bob"),
        org(1, "acme"),
        member(1, 1, 1),
        member(2, 1, 2),
        team(1, 1, "backend"),
        project(1, 1, "api"),
        dashboard(1, 1, 1, "Overview"),
    ]


@dataclass(frozen=True)
class Violation:
    """An export that breaks one constraint, and the finding that must name it."""

    id: str
    rows: Callable[[], list[dict]]
    model: str
    ordinal: int
    pk: int
    #: Words the finding's reason must hold (the constraint's name and what it says).
    words: tuple[str, ...]


def _users_with_bad_avatar() -> list[dict]:
    rows = [user(pk, f"user{pk}") for pk in range(1, 1501)]
    rows[1199] = user(1200, "user1200", avatar_type=-1)
    return rows


VIOLATIONS = [
    # The cases.
    Violation(
        "check_avatar_type_on_user_1200_of_1500",
        _users_with_bad_avatar,
        "sentry.user",
        1200,
        1200,
        ("auth_user_avatar_type_check", "avatar_type >= 0", "-1"),
    ),
    Violation(
        "check_dashboardwidget_order",
        lambda: [*tenant(), widget(1, 1, 0), widget(2, 1, -1)],
        "sentry.dashboardwidget",
        2,
        2,
        ("sentry_dashboardwidget_order_check", '"order" >= 0'),
    ),
    Violation(
        "check_monitor_owned_by_user_and_team",
        lambda: [
            *tenant(),
            monitor(1, 1, 1, "ok", owner_user_id=1),
            monitor(2, 1, 1, "both", owner_user_id=1, owner_team_id=1),
        ],
        "sentry.monitor",
        2,
        2,
        ("monitor_owner_team_or_user_check", "owner_team_id", "owner_user_id"),
    ),
    Violation(
        "unique_member_organization_user",
        lambda: [*tenant(), member(3, 1, 1)],
        "sentry.organizationmember",
        3,
        3,
        ("organization_id", "user_id", "row 1", "pk 1"),
    ),
    Violation(
        "unique_team_slug_in_organization",
        lambda: [*tenant(), team(2, 1, "frontend"), team(3, 1, "backend")],
        "sentry.team",
        3,
        3,
        ("organization_id", "slug", "row 1", "pk 1", "backend"),
    ),
    # More of the class: other checks, other unique sets.
    Violation(
        "check_member_type",
        lambda: [*tenant(), member(3, 1, None, email="c@example.com", type=-5)],
        "sentry.organizationmember",
        3,
        3,
        ("sentry_organizationmember_type_check", "type >= 0"),
    ),
    Violation(
        "check_team_status",
        lambda: [*tenant(), team(2, 1, "ops", status=-1)],
        "sentry.team",
        2,
        2,
        ("sentry_team_status_check", "status >= 0"),
    ),
    Violation(
        "unique_member_organization_email",
        lambda: [
            *tenant(),
            member(3, 1, None, email="x@example.com"),
            member(4, 1, None, email="x@example.com"),
        ],
        "sentry.organizationmember",
        4,
        4,
        ("organization_id", "email", "row 3", "pk 3"),
    ),
    Violation(
        "unique_project_slug_in_organization",
        lambda: [*tenant(), project(2, 1, "web"), project(3, 1, "api")],
        "sentry.project",
        3,
        3,
        ("organization_id", "slug", "row 1", "pk 1"),
    ),
    Violation(
        "unique_dashboardwidget_order",
        lambda: [*tenant(), widget(1, 1, 0), widget(2, 1, 1), widget(3, 1, 0)],
        "sentry.dashboardwidget",
        3,
        3,
        ("dashboard_id", "order", "row 1", "pk 1"),
    ),
    Violation(
        "unique_monitor_slug_in_project",
        lambda: [*tenant(), monitor(1, 1, 1, "cron"), monitor(2, 1, 1, "cron")],
        "sentry.monitor",
        2,
        2,
        ("project_id", "slug", "row 1", "pk 1"),
    ),
    # NOT NULL and lengths.
    Violation(
        "not_null_team_slug",
        lambda: [*tenant(), team(2, 1, None)],
        "sentry.team",
        2,
        2,
        ("slug", "null"),
    ),
    Violation(
        "varchar_too_long_team_slug",
        lambda: [*tenant(), team(2, 1, "x" * 51)],
        "sentry.team",
        2,
        2,
        ("slug", "51", "50"),
    ),
]


def _assert_nothing_written(dsn: str) -> None:
    counts = {t: scalar(dsn, f"SELECT count(*) FROM {t}") for t in TABLES_AFTER_A_FINDING}
    assert counts == dict.fromkeys(TABLES_AFTER_A_FINDING, 0)


@pytest.mark.parametrize("case", VIOLATIONS, ids=lambda c: c.id)
def test_16_01_constraint_violation_is_a_finding_before_any_write(
    db_dsn: str, tmp_path: Path, case: Violation
) -> None:
    src = write_export(tmp_path / "export.json", case.rows())
    findings_file = tmp_path / "findings.json"
    run = import_export(db_dsn, "organizations", src, "--findings-file", str(findings_file))

    assert run.code == 1, run.err
    assert "Traceback" not in run.err
    findings = json.loads(findings_file.read_text())
    assert len(findings) == 1, findings
    finding = findings[0]
    assert finding["kind"] == "ValidationError"
    assert finding["on"] == {"model": case.model, "ordinal": case.ordinal}
    assert finding["left_pk"] == case.pk
    for word in case.words:
        assert word in finding["reason"], (word, finding["reason"])
    _assert_nothing_written(db_dsn)
    assert "Nothing was written" in run.err, run.err


def test_16_01_every_violation_of_a_constraint_is_named(db_dsn: str, tmp_path: Path) -> None:
    """Three widgets break the check, two teams repeat a slug: five findings, one per row."""
    rows = [
        *tenant(),
        widget(1, 1, -1),
        widget(2, 1, 0),
        widget(3, 1, -2),
        widget(4, 1, -3),
        team(2, 1, "backend"),
        team(3, 1, "backend"),
    ]
    findings_file = tmp_path / "findings.json"
    run = import_export(
        db_dsn,
        "organizations",
        write_export(tmp_path / "export.json", rows),
        "--findings-file",
        str(findings_file),
    )
    assert run.code == 1, run.err
    named = sorted(
        (f["on"]["model"], f["on"]["ordinal"]) for f in json.loads(findings_file.read_text())
    )
    assert named == [
        ("sentry.dashboardwidget", 1),
        ("sentry.dashboardwidget", 3),
        ("sentry.dashboardwidget", 4),
        ("sentry.team", 2),
        ("sentry.team", 3),
    ]
    _assert_nothing_written(db_dsn)


def test_16_01_duplicates_the_rules_resolve_still_import(db_dsn: str, tmp_path: Path) -> None:
    """Sentry resolves these duplicates itself: a renamed user, a suffixed organization
    slug, one Email for two rows, a repeated pk skipped: no finding."""
    rows = [
        user(1, "alice"),
        user(2, "alice", email="alice2@example.com"),
        org(1, "acme"),
        org(2, "acme"),
        member(1, 1, 1),
        member(2, 2, 2),
        team(1, 1, "backend"),
        team(2, 2, "backend"),  # the same slug in another organization
        row("sentry.email", 1, email="alice@example.com", date_added=TS),
        row("sentry.email", 2, email="ALICE@example.com", date_added=TS),
        team(1, 1, "backend"),  # the same row twice: a duplicate pk, skipped
    ]
    run = import_export(db_dsn, "organizations", write_export(tmp_path / "export.json", rows))
    assert run.code == 0, run.err
    names = sorted(r[0] for r in query(db_dsn, "SELECT username FROM auth_user"))
    assert names[0] == "alice" and names[1].startswith("alice-"), names
    slugs = sorted(r[0] for r in query(db_dsn, "SELECT slug FROM sentry_organization"))
    assert slugs[0] == "acme" and slugs[1].startswith("acme-"), slugs
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_team") == 2
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_organizationmember") == 2


def test_16_01_config_duplicates_still_import(db_dsn: str, tmp_path: Path) -> None:
    """Two options with one key: the second maps to the first (Existing), as in Sentry."""
    rows = [option(1, "system.admin-email", "a@example.com"), option(2, "system.admin-email", "b")]
    run = import_export(db_dsn, "config", write_export(tmp_path / "export.json", rows))
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT key, value FROM sentry_option") == [
        ("system.admin-email", "a@example.com")
    ]


def test_16_01_write_time_failure_says_what_the_target_holds(db_dsn: str, tmp_path: Path) -> None:
    """A unique index the export cannot be checked against (a project name already taken in
    the target) fails stage 3 at write time: the message lists the stages and models that
    were committed, and how to resume or roll back."""
    project_name_taken(db_dsn)
    rows = tenant()
    run = import_export(db_dsn, "organizations", write_export(tmp_path / "export.json", rows))
    assert run.code == 1
    uuid = scalar(db_dsn, "SELECT import_uuid FROM relocate_import").hex
    assert "IntegrityError" in run.err
    assert "The write of stage 3 (sentry.project) failed" in run.err
    held = run.err.split("The target holds", 1)[1].split("Fix the cause", 1)[0]
    assert "stage 1: sentry.organization 1, sentry.user 2;" in held
    assert "stage 2: " in held and "sentry.team 1" in held
    assert "sentry.project" not in held
    assert f"rerun with --import-uuid {uuid} to resume" in run.err
    assert f"relocate rollback --import-uuid {uuid}" in run.err
    ledger = dict(query(db_dsn, "SELECT model, count(*) FROM relocate_pk_map GROUP BY 1"))
    assert "sentry.project" not in ledger
    assert ledger["sentry.user"] == 2


@dataclass(frozen=True)
class TargetConstraint:
    """A constraint this target has beyond relocate's schema: read from its catalog."""

    id: str
    ddl: str
    rows: Callable[[], list[dict]]
    model: str
    ordinal: int
    words: tuple[str, ...]


TARGET_CONSTRAINTS = [
    TargetConstraint(
        "check_added_by_the_target",
        "ALTER TABLE sentry_project ADD CONSTRAINT project_name_not_blank CHECK (name <> '')",
        lambda: [*tenant(), project(2, 1, "web", name="")],
        "sentry.project",
        2,
        ("project_name_not_blank", "<> ''", "name = ''"),
    ),
    TargetConstraint(
        "unique_expression_index",
        "CREATE UNIQUE INDEX team_name_ci ON sentry_team (organization_id, lower(name))",
        lambda: [*tenant(), team(2, 1, "ops", name="Ops"), team(3, 1, "ops2", name="OPS")],
        "sentry.team",
        3,
        ("team_name_ci", "lower", "row 2", "pk 2"),
    ),
    TargetConstraint(
        "unique_partial_index",
        "CREATE UNIQUE INDEX one_pending_invite ON sentry_organizationmember (organization_id)"
        " WHERE invite_status = 1",
        lambda: [
            *tenant(),
            member(3, 1, None, email="a@example.com", invite_status=2),
            member(4, 1, None, email="b@example.com", invite_status=1),
            member(5, 1, None, email="c@example.com", invite_status=1),
        ],
        "sentry.organizationmember",
        5,
        ("one_pending_invite", "row 4", "pk 4"),
    ),
    TargetConstraint(
        # A type the field checks do not bound: COPY into the staged column rejects it.
        "value_the_target_type_rejects",
        "ALTER TABLE auth_user ALTER avatar_type TYPE numeric(1, 0)",
        lambda: [*tenant(), user(3, "carol", avatar_type=12)],
        "sentry.user",
        3,
        ("auth_user", "numeric field overflow"),
    ),
]


@pytest.mark.parametrize("case", TARGET_CONSTRAINTS, ids=lambda c: c.id)
def test_16_01_constraints_of_the_target_catalog_are_checked(
    db_dsn: str, tmp_path: Path, case: TargetConstraint
) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(case.ddl)
    findings_file = tmp_path / "findings.json"
    run = import_export(
        db_dsn,
        "organizations",
        write_export(tmp_path / "export.json", case.rows()),
        "--findings-file",
        str(findings_file),
    )
    assert run.code == 1, run.err
    findings = json.loads(findings_file.read_text())
    assert [(f["kind"], f["on"]["model"], f["on"]["ordinal"]) for f in findings] == [
        ("ValidationError", case.model, case.ordinal)
    ], findings
    for word in case.words:
        assert word in findings[0]["reason"], (word, findings[0]["reason"])
    _assert_nothing_written(db_dsn)


def test_16_01_staging_tables_are_dropped(db_dsn: str, tmp_path: Path) -> None:
    """The run's staging and held tables are gone after a clean import, after a finding,
    and after a pipeline that fails once rows were staged (an export cut short)."""
    cut = tmp_path / "cut.json"
    text = json.dumps([user(pk, f"user{pk}") for pk in range(1, 3001)])
    cut.write_text(text[: len(text) - 200])
    runs = [
        (write_export(tmp_path / "clean.json", tenant()), 0),
        (write_export(tmp_path / "dup.json", [*tenant(), team(2, 1, "backend")]), 1),
        (cut, None),
    ]
    for src, code in runs:
        run = import_export(db_dsn, "organizations", src)
        if code is None:
            assert run.code != 0 and "Traceback" not in run.err, run.err
        else:
            assert run.code == code, run.err
        left = query(
            db_dsn,
            "SELECT relname FROM pg_class WHERE relname LIKE 'relocate_check%' "
            "OR relname LIKE 'relocate_held%'",
        )
        assert left == [], (src.name, left)
