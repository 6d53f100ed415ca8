"""A realistic synthetic Sentry export of any size, for benchmarks and tests.

``relocate generate OUT --rows N [--seed S] [--scope organizations|global] [--shuffle]``
writes a JSON array of ``{"model", "pk", "fields"}`` rows shaped like Sentry's own exports:
field names as in ``tables.json``, foreign keys as the source pk of the target row,
datetimes as ``2023-06-22T22:59:55.488Z``, bitfields as decimal strings (``"0"``),
Postgres arrays as JSON lists, option values as JSON text inside a string, snowflake-sized
pks for organizations, teams and projects.

The export is a set of identical-shape organizations ("tenants"), each with its users,
members, teams, projects and the per-project and per-user children, plus a few
installation options. ``N`` is the total row count: as many standard organizations as fit,
then one smaller organization (fewer users and projects) that brings the total to within
a few rows of ``N`` (within 1% for ``N >= 1,000``).

Per standard organization (``organizations`` scope: 757 rows; ``global`` adds 63):

=================================  =======  ================================================
model                              rows     shape
=================================  =======  ================================================
sentry.organization                1
sentry.organizationoption          5        fixed keys
sentry.team                        5        one per 2 projects
sentry.user                        50       1 in 10 inactive, 10 of 50 not members
sentry.savedsearch                 2        organization-visible
sentry.recentsearch                40       one per member user
sentry.project                     10
sentry.organizationmember          42       40 users (owner, managers, admins, members)
                                            + 2 pending email invites (tokens)
sentry.monitor                     5        cron monitors on every other project
sentry.environment                 3        production, staging, development
sentry.email                       60       every user's address, + a second one for 1 in 5
sentry.dashboard                   3        one per 3 projects
sentry.counter                     10       one per project
sentry.useroption                  100      timezone and language per user
sentry.useremail                   60       as sentry.email
sentry.snubaquery                  10       one per alert rule
sentry.rule                        30       3 issue alert rules per project
sentry.querysubscription           10       one per alert rule
sentry.projectteam                 12       every project 1 team, 1 in 5 a second
sentry.projectownership            5        every other project
sentry.projectoption               80       8 options per project
sentry.projectkey                  20       2 DSN keys per project
sentry.projectbookmark             20       2 members per project
sentry.organizationmemberteam      60       every member 1 team, every other a second
sentry.environmentproject          30       every environment on every project
sentry.dashboardwidget             12       4 per dashboard
sentry.alertrule                   10       one metric alert per project
sentry.snubaqueryeventtype         10       one per query
sentry.dashboardwidgetquery        12       one per widget
sentry.alertruletrigger            20       critical + warning per alert rule
sentry.alertruleprojects           10       one per alert rule
sentry.alertruleactivity           10       "created" per alert rule
*global scope only:*
sentry.integration                 1        a GitHub installation
sentry.organizationintegration     1        linking it to the organization
sentry.userip                      50       one per user
sentry.authenticator               10       recovery codes for 1 user in 5
sentry.apiapplication              1        owned by the organization's owner
*once per export:*
sentry.option                      12       installation options (Config scope)
=================================  =======  ================================================

So 22% of the rows are users and their email addresses, 35% per-user children (options,
memberships, team memberships, recent searches, bookmarks) and 43% the organization's
projects, alerts, dashboards and their children (40% hang off a project). 1M rows are
1,321 organizations and about 66,000 users; 10M rows about 13,200 organizations.

Determinism: the same ``(N, seed, scope, shuffle)`` gives the same bytes. Every row's
values come from a random stream seeded by ``(seed, model)``; values that two models must
agree on (a user's email in ``sentry.user``, ``sentry.email``, ``sentry.useremail`` and
``sentry.organizationmember.user_email``) are functions of the row's index and seed-level
tables. Primary keys are arithmetic (organization ``o``'s ``k``-th row of a model has pk
``o * per_org + k + 1``), so a foreign key never needs a lookup: nothing but the current
chunk of output is held in memory.

``--shuffle`` writes the same rows in a random order (a seeded scatter into bucket files
of about 50,000 rows next to ``OUT``, each bucket shuffled in memory, then concatenated):
an export whose children may come before their parents.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

__all__ = ("Plan", "generate", "iter_rows", "org_counts", "plan_export", "register")

GEN_SCOPES = ("organizations", "global")

#: The standard organization: users and projects; everything else derives from them.
STD_USERS = 50
STD_PROJECTS = 10

# Snowflake-like id bases (Sentry's organizations, teams and projects have 16-digit ids).
ORG_BASE = 4_554_274_226_110_464
TEAM_BASE = 4_554_275_000_000_000
PROJECT_BASE = 4_554_276_000_000_000

_CHUNK_ROWS = 8192
_BUCKET_ROWS = 50_000
_MAX_BUCKETS = 512
_TS_POOL = 4096

GLOBAL_ONLY = (
    "sentry.integration",
    "sentry.organizationintegration",
    "sentry.userip",
    "sentry.authenticator",
    "sentry.apiapplication",
)

FIRST_NAMES = (
    "ada",
    "alan",
    "alice",
    "amir",
    "ana",
    "anna",
    "arjun",
    "ben",
    "carla",
    "chen",
    "chloe",
    "dana",
    "david",
    "diego",
    "elena",
    "emma",
    "erik",
    "fatima",
    "felix",
    "grace",
    "hana",
    "hugo",
    "ines",
    "ivan",
    "jack",
    "james",
    "jana",
    "jonas",
    "julia",
    "kai",
    "karim",
    "kate",
    "lars",
    "laura",
    "leo",
    "lina",
    "lucas",
    "maria",
    "marta",
    "max",
    "maya",
    "mia",
    "nadia",
    "nils",
    "noah",
    "olga",
    "omar",
    "paul",
    "pedro",
    "priya",
    "rosa",
    "sam",
    "sara",
    "sofia",
    "tom",
    "uma",
    "victor",
    "wei",
    "yara",
    "yusuf",
    "zoe",
)
LAST_NAMES = (
    "adams",
    "ali",
    "bauer",
    "becker",
    "brown",
    "chen",
    "costa",
    "cruz",
    "das",
    "diaz",
    "evans",
    "fischer",
    "garcia",
    "gomez",
    "hall",
    "hansen",
    "ito",
    "jensen",
    "jones",
    "kim",
    "king",
    "klein",
    "kumar",
    "lee",
    "lopez",
    "martin",
    "meyer",
    "miller",
    "moreau",
    "muller",
    "nakamura",
    "nguyen",
    "novak",
    "olsen",
    "park",
    "patel",
    "perez",
    "rossi",
    "sato",
    "schmidt",
    "silva",
    "singh",
    "smith",
    "suzuki",
    "tanaka",
    "taylor",
    "torres",
    "vogel",
    "wagner",
    "walker",
    "wang",
    "weber",
    "white",
    "wilson",
    "wong",
    "young",
    "zhang",
)
DOMAINS = ("example.com", "example.org", "example.net", "corp.example.com", "mail.example.org")
ALT_DOMAINS = ("users.example.net", "inbox.example.com", "post.example.org")
ADJECTIVES = (
    "amber",
    "bold",
    "brave",
    "bright",
    "calm",
    "clever",
    "cosmic",
    "crisp",
    "daring",
    "eager",
    "fancy",
    "gentle",
    "golden",
    "happy",
    "humble",
    "jolly",
    "keen",
    "lively",
    "lucky",
    "mellow",
    "misty",
    "noble",
    "polar",
    "proud",
    "quick",
    "quiet",
    "rapid",
    "royal",
    "rustic",
    "silent",
    "silver",
    "smooth",
    "solar",
    "steady",
    "sunny",
    "swift",
    "tidy",
    "vivid",
    "witty",
)
ANIMALS = (
    "badger",
    "bison",
    "crane",
    "eagle",
    "falcon",
    "ferret",
    "fox",
    "gecko",
    "goose",
    "heron",
    "ibis",
    "jackal",
    "koala",
    "lemur",
    "llama",
    "lynx",
    "marten",
    "mole",
    "moose",
    "newt",
    "otter",
    "owl",
    "panda",
    "puffin",
    "quail",
    "raven",
    "robin",
    "salmon",
    "seal",
    "shrew",
    "sloth",
    "swan",
    "tapir",
    "tiger",
    "toucan",
    "trout",
    "viper",
    "walrus",
    "wolf",
    "yak",
    "zebra",
)
PROJECT_NAMES = (
    "backend",
    "api",
    "web",
    "frontend",
    "mobile-ios",
    "mobile-android",
    "payments",
    "checkout",
    "search",
    "auth",
    "gateway",
    "worker",
    "scheduler",
    "billing",
    "notifications",
    "analytics",
    "admin",
    "ingest",
    "exporter",
    "importer",
    "mailer",
    "cron",
    "reports",
    "sdk-demo",
)
PLATFORMS = (
    "python",
    "python-django",
    "javascript",
    "javascript-react",
    "node",
    "java",
    "go",
    "ruby-rails",
    "php-laravel",
    "apple-ios",
    "android",
    "dotnet",
    None,
)
TEAM_NAMES = (
    "platform",
    "frontend",
    "backend",
    "mobile",
    "infra",
    "data",
    "growth",
    "payments",
    "security",
    "sre",
    "qa",
    "design",
    "core",
    "api",
    "ops",
)
TIMEZONES = (
    "Europe/Vienna",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "UTC",
)
LANGUAGES = ("en", "de", "fr", "es", "ja", "pt-br")
ENVIRONMENTS = ("production", "staging", "development")
DASHBOARD_TITLES = ("Backend health", "Frontend vitals", "Errors overview", "Releases")
WIDGET_TITLES = ("Errors by project", "p95 duration", "Top transactions", "Crash-free rate")
COUNTRIES = (
    ("US", "CA"),
    ("DE", "BE"),
    ("AT", "9"),
    ("GB", "ENG"),
    ("FR", "IDF"),
    ("JP", "13"),
    ("BR", "SP"),
    ("IN", "KA"),
)
ROLES = ("owner", "manager", "manager", "admin", "admin", "admin", "admin", "admin")


def _s(value: str) -> str:
    """A JSON string literal (for values that may need escaping)."""
    return json.dumps(value)


def _js(value: object) -> str:
    """JSON text of a value, as a JSON string literal (Sentry's option values)."""
    return json.dumps(json.dumps(value, separators=(",", ":")))


def _j(value: object) -> str:
    """A compact JSON literal."""
    return json.dumps(value, separators=(",", ":"))


ORG_OPTIONS = tuple(
    (key, _js(value))
    for key, value in (
        ("sentry:require_scrub_defaults", True),
        ("sentry:scrub_ip_address", True),
        ("sentry:sensitive_fields", ["password", "secret", "token"]),
        ("sentry:join_requests", False),
        ("sentry:events_member_admin", True),
    )
)
INSTALL_OPTIONS = tuple(
    (key, _js(value))
    for key, value in (
        ("sentry:install-id", "1bc81f9440424e908a73ca377581cb52682db68a"),
        ("sentry:last_worker_ping", 1687902001.2623305),
        ("sentry:last_worker_version", "24.7.0"),
        ("sentry:latest_version", "24.7.1"),
        ("sentry:version-configured", "24.7.0"),
        ("system.url-prefix", "https://sentry.example.com"),
        ("system.admin-email", "admin@example.com"),
        ("mail.host", "smtp.example.com"),
        ("mail.port", 587),
        ("mail.from", "sentry@example.com"),
        ("auth.allow-registration", False),
        ("beacon.anonymous", True),
    )
)
RULE_DATA = tuple(
    _s(_j(data))
    for data in (
        {
            "conditions": [
                {"id": "sentry.rules.conditions.first_seen_event.FirstSeenEventCondition"}
            ],
            "action_match": "all",
            "filter_match": "all",
            "actions": [
                {
                    "id": "sentry.mail.actions.NotifyEmailAction",
                    "targetType": "IssueOwners",
                    "fallthroughType": "ActiveMembers",
                }
            ],
            "frequency": 30,
        },
        {
            "conditions": [
                {"id": "sentry.rules.conditions.regression_event.RegressionEventCondition"}
            ],
            "action_match": "any",
            "filter_match": "all",
            "actions": [{"id": "sentry.rules.actions.notify_event.NotifyEventAction"}],
            "frequency": 60,
        },
        {
            "conditions": [
                {
                    "id": "sentry.rules.conditions.event_frequency.EventFrequencyCondition",
                    "interval": "1h",
                    "value": 100,
                    "comparisonType": "count",
                }
            ],
            "action_match": "all",
            "filter_match": "all",
            "actions": [
                {
                    "id": "sentry.rules.actions.notify_event_service.NotifyEventServiceAction",
                    "service": "mail",
                }
            ],
            "frequency": 1440,
        },
    )
)
RULE_LABELS = ("New issue", "Regression", "High volume")
PROJECT_OPTION_KEYS = (
    "sentry:relay-rev",
    "sentry:relay-rev-lastchange",
    "sentry:option-epoch",
    "sentry:origins",
    "sentry:resolve_age",
    "sentry:scrub_data",
    "sentry:token",
    "mail:subject_prefix",
)
KEY_DATA = (
    _j({"dynamicSdkLoaderOptions": {"hasPerformance": True, "hasReplay": True}}),
    _j(
        {
            "dynamicSdkLoaderOptions": {
                "hasPerformance": False,
                "hasReplay": False,
                "hasDebug": False,
            }
        }
    ),
)
MONITOR_CONFIGS = tuple(
    _j(c)
    for c in (
        {
            "schedule": "0 * * * *",
            "schedule_type": 1,
            "checkin_margin": 5,
            "max_runtime": 30,
            "timezone": "UTC",
        },
        {
            "schedule": [1, "day"],
            "schedule_type": 2,
            "checkin_margin": None,
            "max_runtime": None,
            "timezone": "Europe/Vienna",
        },
        {
            "schedule": "*/15 * * * *",
            "schedule_type": 1,
            "checkin_margin": 2,
            "max_runtime": 10,
            "timezone": "America/New_York",
        },
    )
)
SNUBA_QUERIES = (
    # (type, dataset, query, aggregate, time_window, event type)
    (0, "events", "level:error", "count()", 600, 0),
    (1, "transactions", "", "p95(transaction.duration)", 900, 2),
    (
        2,
        "metrics",
        "",
        "percentage(sessions_crashed, sessions) AS _crash_rate_alert_aggregate",
        3600,
        1,
    ),
)
WIDGET_QUERIES = tuple(
    (_j(fields), _j(aggregates), _j(columns), _j(aliases), _s(orderby))
    for fields, aggregates, columns, aliases, orderby in (
        (["project", "count()"], ["count()"], ["project"], ["", ""], "-count()"),
        (["p95(transaction.duration)"], ["p95(transaction.duration)"], [], [""], ""),
        (
            ["transaction", "count()", "p75(transaction.duration)"],
            ["count()", "p75(transaction.duration)"],
            ["transaction"],
            ["", "", ""],
            "-count()",
        ),
        (["crash_free_rate(session)"], ["crash_free_rate(session)"], [], [""], ""),
    )
)


def org_counts(
    users: int = STD_USERS, projects: int = STD_PROJECTS, scope: str = "organizations"
) -> dict[str, int]:
    """Rows per model of one organization with ``users`` users and ``projects`` projects.

    The generators below produce exactly these counts; ``plan_export`` sizes the export
    with them.
    """
    u, p = users, projects
    members = max(1, u * 4 // 5)
    invites = u // 25
    teams = max(1, (p + 1) // 2)
    second = u // 5
    dashboards = max(1, p // 3)
    counts = {
        "sentry.organization": 1,
        "sentry.organizationoption": len(ORG_OPTIONS),
        "sentry.team": teams,
        "sentry.user": u,
        "sentry.savedsearch": 2,
        "sentry.recentsearch": members,
        "sentry.project": p,
        "sentry.organizationmember": members + invites,
        "sentry.monitor": p // 2,
        "sentry.environment": len(ENVIRONMENTS),
        "sentry.email": u + second,
        "sentry.dashboard": dashboards,
        "sentry.counter": p,
        "sentry.useroption": 2 * u,
        "sentry.useremail": u + second,
        "sentry.snubaquery": p,
        "sentry.rule": 3 * p,
        "sentry.querysubscription": p,
        "sentry.projectteam": p + (p // 5 if teams > 1 else 0),
        "sentry.projectownership": p // 2,
        "sentry.projectoption": len(PROJECT_OPTION_KEYS) * p,
        "sentry.projectkey": 2 * p,
        "sentry.projectbookmark": p * min(2, members),
        "sentry.organizationmemberteam": members + (members // 2 if teams > 1 else 0),
        "sentry.environmentproject": len(ENVIRONMENTS) * p,
        "sentry.dashboardwidget": 4 * dashboards,
        "sentry.alertrule": p,
        "sentry.snubaqueryeventtype": p,
        "sentry.dashboardwidgetquery": 4 * dashboards,
        "sentry.alertruletrigger": 2 * p,
        "sentry.alertruleprojects": p,
        "sentry.alertruleactivity": p,
    }
    if scope == "global":
        counts.update(
            {
                "sentry.integration": 1,
                "sentry.organizationintegration": 1,
                "sentry.userip": u,
                "sentry.authenticator": second,
                "sentry.apiapplication": 1,
            }
        )
    return counts


def _fixed_counts() -> dict[str, int]:
    """Rows that do not belong to an organization."""
    return {"sentry.option": len(INSTALL_OPTIONS)}


@dataclass(frozen=True)
class Plan:
    """The size of an export: ``full_orgs`` standard organizations, then maybe a smaller one.

    Attributes:
        full_orgs: standard organizations (``STD_USERS`` users, ``STD_PROJECTS`` projects).
        last: (users, projects) of the final, smaller organization, or None.
        scope: ``organizations`` or ``global``.
    """

    full_orgs: int
    last: tuple[int, int] | None
    scope: str = "organizations"

    @property
    def orgs(self) -> int:
        return self.full_orgs + (1 if self.last else 0)

    def shape(self, org: int) -> tuple[int, int]:
        """(users, projects) of organization ``org`` (0-based)."""
        if org < self.full_orgs:
            return STD_USERS, STD_PROJECTS
        assert self.last is not None and org == self.full_orgs
        return self.last

    def counts(self) -> dict[str, int]:
        """Total rows per model."""
        totals = dict(_fixed_counts())
        std = org_counts(scope=self.scope)
        last = org_counts(*self.last, scope=self.scope) if self.last else {}
        for model, n in std.items():
            totals[model] = n * self.full_orgs + last.get(model, 0)
        return totals

    @property
    def total(self) -> int:
        return sum(self.counts().values())


def plan_export(rows: int, scope: str = "organizations") -> Plan:
    """Sizes an export of about ``rows`` rows.

    Standard organizations fill as much as they can; the remainder becomes one smaller
    organization whose (users, projects) brings the total closest to ``rows``.
    """
    if scope not in GEN_SCOPES:
        raise ValueError(f"scope must be one of {GEN_SCOPES}, got {scope!r}")
    fixed = sum(_fixed_counts().values())
    std = sum(org_counts(scope=scope).values())
    budget = max(0, rows - fixed)
    full, rest = divmod(budget, std)
    if rest == 0:
        return Plan(full, None, scope)
    best: tuple[int, tuple[int, int] | None] = (rest, None)  # (distance, shape)
    for users in range(1, STD_USERS + 1):
        for projects in range(1, STD_PROJECTS + 1):
            size = sum(org_counts(users, projects, scope).values())
            if abs(size - rest) < best[0]:
                best = (abs(size - rest), (users, projects))
    if best[1] == (STD_USERS, STD_PROJECTS):
        return Plan(full + 1, None, scope)
    return Plan(full, best[1], scope)


class _Rows:
    """The row generators, one per model, all pure functions of (plan, seed).

    Each ``m_<model>`` method yields the model's rows in pk order. Organization ``o``'s
    ``k``-th row of model M has pk ``o * std[M] + k + 1`` (the smaller organization is the
    last one, so this holds for it too).
    """

    def __init__(self, plan: Plan, seed: int) -> None:
        self.plan = plan
        self.seed = seed
        self.std = org_counts(scope=plan.scope)
        rng = random.Random(f"{seed}:tables")
        start = datetime(2020, 1, 1, tzinfo=timezone.utc)
        span = int(timedelta(days=5 * 365).total_seconds() * 1000)
        stamps = sorted(rng.randrange(span) for _ in range(_TS_POOL))
        self.ts = tuple(
            (start + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{ms % 1000:03d}Z"
            for ms in stamps
        )
        self.names = tuple((rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)) for _ in range(4096))

    # -- shared, index-derived values -------------------------------------------------

    def user_index(self, org: int, local: int) -> int:
        return org * STD_USERS + local

    def email_of(self, user_index: int) -> str:
        first, last = self.names[user_index & 4095]
        return f"{first}.{last}{user_index + 1}@{DOMAINS[user_index % len(DOMAINS)]}"

    def second_email_of(self, user_index: int) -> str:
        first, _ = self.names[user_index & 4095]
        return f"{first}{user_index + 1}@{ALT_DOMAINS[user_index % len(ALT_DOMAINS)]}"

    def org_slug(self, org: int) -> str:
        rng_index = (org * 2654435761 + self.seed) & 0xFFFFFFFF
        adjective = ADJECTIVES[rng_index % len(ADJECTIVES)]
        animal = ANIMALS[(rng_index >> 8) % len(ANIMALS)]
        return f"{adjective}-{animal}-{org + 1}"

    def org_shapes(self) -> Iterator[tuple[int, int, int, int, int, int]]:
        """(org, users, projects, members, invites, teams) of every organization."""
        for org in range(self.plan.orgs):
            u, p = self.plan.shape(org)
            yield org, u, p, max(1, u * 4 // 5), u // 25, max(1, (p + 1) // 2)

    def rng(self, model: str) -> random.Random:
        return random.Random(f"{self.seed}:{model}")

    def stamp(self, rng: random.Random) -> Callable[[], str]:
        ts, bits = self.ts, rng.getrandbits
        return lambda: ts[bits(12)]

    # -- models, in export order (the registry's) --------------------------------------

    def m_option(self) -> Iterator[str]:
        stamp = self.stamp(self.rng("sentry.option"))
        for k, (key, value) in enumerate(INSTALL_OPTIONS):
            yield (
                f'{{"model":"sentry.option","pk":{k + 1},"fields":{{"key":{_s(key)},'
                f'"last_updated":"{stamp()}","last_updated_by":"unknown","value":{value}}}}}'
            )

    def m_integration(self) -> Iterator[str]:
        stamp = self.stamp(self.rng("sentry.integration"))
        for org, *_ in self.org_shapes():
            ts = stamp()
            yield (
                f'{{"model":"sentry.integration","pk":{org + 1},"fields":{{'
                f'"date_updated":"{ts}","date_added":"{ts}","provider":"github",'
                f'"external_id":"{7_100_000 + org}","name":"{self.org_slug(org)}",'
                f'"metadata":{{"access_token":null,"expires_at":null,"icon":'
                f'"https://avatars.githubusercontent.com/u/{7_100_000 + org}?v=4",'
                f'"domain_name":"github.com/{self.org_slug(org)}","account_type":'
                f'"Organization"}},"status":0}}}}'
            )

    def m_organization(self) -> Iterator[str]:
        stamp = self.stamp(self.rng("sentry.organization"))
        for org, *_ in self.org_shapes():
            slug = self.org_slug(org)
            name = " ".join(w.capitalize() for w in slug.split("-")[:2])
            yield (
                f'{{"model":"sentry.organization","pk":{ORG_BASE + org},"fields":{{'
                f'"name":"{name} {org + 1}","slug":"{slug}","status":0,'
                f'"date_added":"{stamp()}","default_role":"member","is_test":false,'
                f'"flags":"1"}}}}'
            )

    def m_organizationintegration(self) -> Iterator[str]:
        stamp = self.stamp(self.rng("sentry.organizationintegration"))
        for org, *_ in self.org_shapes():
            ts = stamp()
            yield (
                f'{{"model":"sentry.organizationintegration","pk":{org + 1},"fields":{{'
                f'"date_updated":"{ts}","date_added":"{ts}",'
                f'"organization_id":{ORG_BASE + org},"integration":{org + 1},'
                f'"config":{{}},"default_auth_id":null,"status":0,'
                f'"grace_period_end":null}}}}'
            )

    def m_organizationoption(self) -> Iterator[str]:
        per = self.std["sentry.organizationoption"]
        for org, *_ in self.org_shapes():
            for k, (key, value) in enumerate(ORG_OPTIONS):
                yield (
                    f'{{"model":"sentry.organizationoption","pk":{org * per + k + 1},'
                    f'"fields":{{"organization":{ORG_BASE + org},"key":"{key}",'
                    f'"value":{value}}}}}'
                )

    def m_team(self) -> Iterator[str]:
        rng = self.rng("sentry.team")
        stamp = self.stamp(rng)
        per = self.std["sentry.team"]
        for org, _, _, _, _, teams in self.org_shapes():
            shift = rng.randrange(len(TEAM_NAMES))
            for k in range(teams):
                name = TEAM_NAMES[(shift + k) % len(TEAM_NAMES)]
                yield (
                    f'{{"model":"sentry.team","pk":{TEAM_BASE + org * per + k},"fields":{{'
                    f'"organization":{ORG_BASE + org},"slug":"{name}",'
                    f'"name":"{name.capitalize()}","status":0,"idp_provisioned":false,'
                    f'"date_added":"{stamp()}"}}}}'
                )

    def m_user(self) -> Iterator[str]:
        rng = self.rng("sentry.user")
        stamp, bits, rand = self.stamp(rng), rng.getrandbits, rng.random
        b64 = base64.b64encode
        for org, users, *_ in self.org_shapes():
            for local in range(users):
                i = self.user_index(org, local)
                first, last = self.names[i & 4095]
                email = self.email_of(i)
                salt = f"{bits(72):018x}"
                digest = b64(bits(256).to_bytes(32, "big")).decode()
                active = "false" if rand() < 0.1 else "true"
                last_login = f'"{stamp()}"' if rand() < 0.8 else "null"
                joined = stamp()
                yield (
                    f'{{"model":"sentry.user","pk":{i + 1},"fields":{{'
                    f'"password":"pbkdf2_sha256$600000${salt}${digest}",'
                    f'"last_login":{last_login},"username":"{email}",'
                    f'"name":"{first.capitalize()} {last.capitalize()}","email":"{email}",'
                    f'"is_staff":false,"is_active":{active},"is_unclaimed":false,'
                    f'"is_superuser":false,"is_managed":false,"is_sentry_app":null,'
                    f'"is_password_expired":false,"last_password_change":"{joined}",'
                    f'"flags":"0","session_nonce":null,"date_joined":"{joined}",'
                    f'"last_active":"{stamp()}","avatar_type":0,"avatar_url":null}}}}'
                )

    def m_userip(self) -> Iterator[str]:
        rng = self.rng("sentry.userip")
        stamp, bits = self.stamp(rng), rng.getrandbits
        for org, users, *_ in self.org_shapes():
            for local in range(users):
                i = self.user_index(org, local)
                country, region = COUNTRIES[bits(3)]
                ip = f"{bits(7) + 20}.{bits(8)}.{bits(8)}.{bits(8) or 1}"
                first = stamp()
                yield (
                    f'{{"model":"sentry.userip","pk":{i + 1},"fields":{{"user":{i + 1},'
                    f'"ip_address":"{ip}","country_code":"{country}",'
                    f'"region_code":"{region}","first_seen":"{first}",'
                    f'"last_seen":"{max(first, stamp())}"}}}}'
                )

    def m_savedsearch(self) -> Iterator[str]:
        stamp = self.stamp(self.rng("sentry.savedsearch"))
        per = self.std["sentry.savedsearch"]
        searches = (
            ("Unresolved errors", "is:unresolved level:error"),
            ("Assigned to my teams", "is:unresolved assigned_or_suggested:my_teams"),
        )
        for org, *_ in self.org_shapes():
            owner = self.user_index(org, 0) + 1
            for k, (name, query) in enumerate(searches):
                yield (
                    f'{{"model":"sentry.savedsearch","pk":{org * per + k + 1},"fields":{{'
                    f'"organization":{ORG_BASE + org},"type":0,"name":"{name}",'
                    f'"query":"{query}","sort":"date","date_added":"{stamp()}",'
                    f'"is_global":false,"owner_id":{owner},'
                    f'"visibility":"organization"}}}}'
                )

    def m_recentsearch(self) -> Iterator[str]:
        rng = self.rng("sentry.recentsearch")
        stamp, bits = self.stamp(rng), rng.getrandbits
        per = self.std["sentry.recentsearch"]
        queries = (
            "is:unresolved",
            "is:unresolved browser.name:Chrome",
            "level:error",
            "is:for_review",
            "release:latest",
            "environment:production",
        )
        for org, _, _, members, _, _ in self.org_shapes():
            for k in range(members):
                query = queries[bits(16) % len(queries)]
                ts = stamp()
                yield (
                    f'{{"model":"sentry.recentsearch","pk":{org * per + k + 1},"fields":{{'
                    f'"organization":{ORG_BASE + org},'
                    f'"user_id":{self.user_index(org, k) + 1},"type":0,"query":"{query}",'
                    f'"query_hash":"{bits(128):032x}","last_seen":"{ts}",'
                    f'"date_added":"{ts}"}}}}'
                )

    def m_project(self) -> Iterator[str]:
        rng = self.rng("sentry.project")
        stamp, rand = self.stamp(rng), rng.random
        per = self.std["sentry.project"]
        for org, _, projects, *_ in self.org_shapes():
            shift = rng.randrange(len(PROJECT_NAMES))
            for j in range(projects):
                slug = PROJECT_NAMES[(shift + j) % len(PROJECT_NAMES)]
                platform = PLATFORMS[rng.randrange(len(PLATFORMS))]
                first_event = f'"{stamp()}"' if rand() < 0.9 else "null"
                yield (
                    f'{{"model":"sentry.project","pk":{PROJECT_BASE + org * per + j},'
                    f'"fields":{{"slug":"{slug}","name":"{slug}","forced_color":null,'
                    f'"organization":{ORG_BASE + org},"public":false,'
                    f'"date_added":"{stamp()}","status":0,"first_event":{first_event},'
                    f'"template":null,"flags":"10","platform":'
                    f"{_s(platform) if platform else 'null'}}}}}"
                )

    def m_organizationmember(self) -> Iterator[str]:
        rng = self.rng("sentry.organizationmember")
        stamp, bits = self.stamp(rng), rng.getrandbits
        per = self.std["sentry.organizationmember"]
        for org, _, _, members, invites, _ in self.org_shapes():
            owner = self.user_index(org, 0) + 1
            for k in range(members):
                i = self.user_index(org, k)
                role = ROLES[k] if k < len(ROLES) else "member"
                inviter = owner if k and bits(1) else "null"
                yield (
                    f'{{"model":"sentry.organizationmember","pk":{org * per + k + 1},'
                    f'"fields":{{"organization":{ORG_BASE + org},"user_id":{i + 1},'
                    f'"email":null,"role":"{role}","flags":"0","token":null,'
                    f'"date_added":"{stamp()}","token_expires_at":null,'
                    f'"has_global_access":true,"inviter_id":{inviter},"invite_status":0,'
                    f'"type":50,"user_is_active":true,"user_email":"{self.email_of(i)}"}}}}'
                )
            for k in range(invites):
                pk = org * per + members + k + 1
                added = stamp()
                yield (
                    f'{{"model":"sentry.organizationmember","pk":{pk},'
                    f'"fields":{{"organization":{ORG_BASE + org},"user_id":null,'
                    f'"email":"invitee{pk}@{DOMAINS[pk % len(DOMAINS)]}","role":"member",'
                    f'"flags":"0","token":"{bits(128):032x}{pk:016x}","date_added":"{added}",'
                    f'"token_expires_at":"{max(added, stamp())}","has_global_access":true,'
                    f'"inviter_id":{owner},"invite_status":1,"type":50,'
                    f'"user_is_active":true,"user_email":null}}}}'
                )

    def m_monitor(self) -> Iterator[str]:
        rng = self.rng("sentry.monitor")
        stamp, bits = self.stamp(rng), rng.getrandbits
        per, tper, pper = (self.std[m] for m in ("sentry.monitor", "sentry.team", "sentry.project"))
        for org, _, projects, members, _, teams in self.org_shapes():
            for k in range(projects // 2):
                pk = org * per + k + 1
                j = 2 * k + 1
                owner = bits(2)
                user = self.user_index(org, bits(16) % members) + 1 if owner == 1 else "null"
                team = TEAM_BASE + org * tper + bits(16) % teams if owner == 2 else "null"
                h = f"{bits(80):020x}{pk:012x}"
                guid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"
                yield (
                    f'{{"model":"sentry.monitor","pk":{pk},"fields":{{'
                    f'"date_added":"{stamp()}","organization_id":{ORG_BASE + org},'
                    f'"project_id":{PROJECT_BASE + org * pper + j},"status":0,'
                    f'"guid":"{guid}","slug":"nightly-job-{k + 1}","is_muted":false,'
                    f'"name":"Nightly job {k + 1}","type":3,"owner_user_id":{user},'
                    f'"owner_team_id":{team},'
                    f'"config":{MONITOR_CONFIGS[bits(16) % len(MONITOR_CONFIGS)]}}}}}'
                )

    def m_environment(self) -> Iterator[str]:
        stamp = self.stamp(self.rng("sentry.environment"))
        per = self.std["sentry.environment"]
        for org, *_ in self.org_shapes():
            for k, name in enumerate(ENVIRONMENTS):
                yield (
                    f'{{"model":"sentry.environment","pk":{org * per + k + 1},"fields":{{'
                    f'"organization_id":{ORG_BASE + org},"name":"{name}",'
                    f'"date_added":"{stamp()}"}}}}'
                )

    def _emails(self, org: int, users: int) -> Iterator[tuple[int, int, str]]:
        """(local index, user index, address) of an organization's email addresses."""
        for local in range(users):
            i = self.user_index(org, local)
            yield local, i, self.email_of(i)
        for k in range(users // 5):
            i = self.user_index(org, 5 * k + 4)
            yield users + k, i, self.second_email_of(i)

    def m_email(self) -> Iterator[str]:
        stamp = self.stamp(self.rng("sentry.email"))
        per = self.std["sentry.email"]
        for org, users, *_ in self.org_shapes():
            for local, _, address in self._emails(org, users):
                yield (
                    f'{{"model":"sentry.email","pk":{org * per + local + 1},"fields":{{'
                    f'"email":"{address}","date_added":"{stamp()}"}}}}'
                )

    def m_dashboard(self) -> Iterator[str]:
        rng = self.rng("sentry.dashboard")
        stamp, bits = self.stamp(rng), rng.getrandbits
        per = self.std["sentry.dashboard"]
        for org, _, projects, members, _, _ in self.org_shapes():
            for k in range(max(1, projects // 3)):
                filters = '"{\\"release\\":[\\"latest\\"]}"' if bits(1) else "null"
                yield (
                    f'{{"model":"sentry.dashboard","pk":{org * per + k + 1},"fields":{{'
                    f'"title":"{DASHBOARD_TITLES[k]}",'
                    f'"created_by_id":{self.user_index(org, bits(16) % members) + 1},'
                    f'"organization":{ORG_BASE + org},"date_added":"{stamp()}",'
                    f'"visits":{bits(10) + 1},"last_visited":"{stamp()}",'
                    f'"filters":{filters}}}}}'
                )

    def m_counter(self) -> Iterator[str]:
        bits = self.rng("sentry.counter").getrandbits
        per, pper = self.std["sentry.counter"], self.std["sentry.project"]
        for org, _, projects, *_ in self.org_shapes():
            for j in range(projects):
                yield (
                    f'{{"model":"sentry.counter","pk":{org * per + j + 1},"fields":{{'
                    f'"project":{PROJECT_BASE + org * pper + j},"value":{bits(14) + 1}}}}}'
                )

    def m_authenticator(self) -> Iterator[str]:
        stamp = self.stamp(self.rng("sentry.authenticator"))
        per = self.std["sentry.authenticator"]
        for org, users, *_ in self.org_shapes():
            for k in range(users // 5):
                yield (
                    f'{{"model":"sentry.authenticator","pk":{org * per + k + 1},"fields":{{'
                    f'"user":{self.user_index(org, 5 * k) + 1},"created_at":"{stamp()}",'
                    f'"last_used_at":null,"type":1,"config":"\\"\\""}}}}'
                )

    def m_apiapplication(self) -> Iterator[str]:
        rng = self.rng("sentry.apiapplication")
        stamp, bits = self.stamp(rng), rng.getrandbits
        for org, *_ in self.org_shapes():
            pk = org + 1
            name = (
                f"{ADJECTIVES[bits(16) % len(ADJECTIVES)].capitalize()} "
                f"{ANIMALS[bits(16) % len(ANIMALS)].capitalize()}"
            )
            yield (
                f'{{"model":"sentry.apiapplication","pk":{pk},"fields":{{'
                f'"client_id":"{bits(208):052x}{pk:012x}","client_secret":"{bits(256):064x}",'
                f'"owner":{self.user_index(org, 0) + 1},"name":"{name}","status":0,'
                f'"allowed_origins":"","redirect_uris":"https://{self.org_slug(org)}'
                f'.example.com/oauth/callback","homepage_url":null,"privacy_url":null,'
                f'"terms_url":null,"date_added":"{stamp()}","scopes":[],'
                f'"requires_org_level_access":false,"version":0}}}}'
            )

    def m_useroption(self) -> Iterator[str]:
        bits = self.rng("sentry.useroption").getrandbits
        for org, users, *_ in self.org_shapes():
            for local in range(users):
                i = self.user_index(org, local)
                tz = TIMEZONES[bits(16) % len(TIMEZONES)]
                lang = LANGUAGES[bits(16) % len(LANGUAGES)]
                yield (
                    f'{{"model":"sentry.useroption","pk":{2 * i + 1},"fields":{{'
                    f'"user":{i + 1},"project_id":null,"organization_id":null,'
                    f'"key":"timezone","value":"\\"{tz}\\""}}}}'
                )
                yield (
                    f'{{"model":"sentry.useroption","pk":{2 * i + 2},"fields":{{'
                    f'"user":{i + 1},"project_id":null,"organization_id":null,'
                    f'"key":"language","value":"\\"{lang}\\""}}}}'
                )

    def m_useremail(self) -> Iterator[str]:
        rng = self.rng("sentry.useremail")
        stamp, bits = self.stamp(rng), rng.getrandbits
        per = self.std["sentry.useremail"]
        for org, users, *_ in self.org_shapes():
            for local, i, address in self._emails(org, users):
                verified = "true" if local < users or bits(1) else "false"
                yield (
                    f'{{"model":"sentry.useremail","pk":{org * per + local + 1},"fields":{{'
                    f'"user":{i + 1},"email":"{address}",'
                    f'"validation_hash":"{bits(128):032x}","date_hash_added":"{stamp()}",'
                    f'"is_verified":{verified}}}}}'
                )

    def m_snubaquery(self) -> Iterator[str]:
        rng = self.rng("sentry.snubaquery")
        stamp, bits = self.stamp(rng), rng.getrandbits
        per, eper = self.std["sentry.snubaquery"], self.std["sentry.environment"]
        for org, _, projects, *_ in self.org_shapes():
            for j in range(projects):
                kind, dataset, query, aggregate, window, _ = SNUBA_QUERIES[j % 3]
                env = org * eper + 1 if bits(1) else "null"
                yield (
                    f'{{"model":"sentry.snubaquery","pk":{org * per + j + 1},"fields":{{'
                    f'"environment":{env},"type":{kind},"dataset":"{dataset}",'
                    f'"query":"{query}","aggregate":"{aggregate}","time_window":{window},'
                    f'"resolution":60,"date_added":"{stamp()}"}}}}'
                )

    def m_rule(self) -> Iterator[str]:
        rng = self.rng("sentry.rule")
        stamp, bits = self.stamp(rng), rng.getrandbits
        per, pper = self.std["sentry.rule"], self.std["sentry.project"]
        tper, eper = self.std["sentry.team"], self.std["sentry.environment"]
        for org, _, projects, members, _, teams in self.org_shapes():
            for j in range(projects):
                for k in range(3):
                    pk = org * per + 3 * j + k + 1
                    owner = bits(2)
                    user = self.user_index(org, bits(16) % members) + 1 if owner == 1 else "null"
                    team = TEAM_BASE + org * tper + bits(16) % teams if owner == 2 else "null"
                    env = org * eper + 1 + bits(16) % 3 if bits(1) else "null"
                    yield (
                        f'{{"model":"sentry.rule","pk":{pk},"fields":{{'
                        f'"project":{PROJECT_BASE + org * pper + j},"environment_id":{env},'
                        f'"label":"{RULE_LABELS[k]}","data":{RULE_DATA[k]},"status":0,'
                        f'"source":0,"owner_user_id":{user},"owner_team":{team},'
                        f'"date_added":"{stamp()}"}}}}'
                    )

    def m_querysubscription(self) -> Iterator[str]:
        rng = self.rng("sentry.querysubscription")
        stamp, bits = self.stamp(rng), rng.getrandbits
        per = self.std["sentry.querysubscription"]
        pper = self.std["sentry.project"]
        for org, _, projects, *_ in self.org_shapes():
            for j in range(projects):
                pk = org * per + j + 1
                ts = stamp()
                yield (
                    f'{{"model":"sentry.querysubscription","pk":{pk},"fields":{{'
                    f'"project":{PROJECT_BASE + org * pper + j},"snuba_query":{pk},'
                    f'"type":"incidents","status":0,'
                    f'"subscription_id":"{bits(6)}/{bits(96):024x}{pk:08x}",'
                    f'"date_added":"{ts}","date_updated":"{ts}","query_extra":null}}}}'
                )

    def m_projectteam(self) -> Iterator[str]:
        per = self.std["sentry.projectteam"]
        pper, tper = self.std["sentry.project"], self.std["sentry.team"]
        for org, _, projects, _, _, teams in self.org_shapes():
            local = 0
            for j in range(projects):
                pairs = [j % teams]
                if teams > 1 and j % 5 == 4:
                    pairs.append((j + 1) % teams)
                for team in pairs:
                    local += 1
                    yield (
                        f'{{"model":"sentry.projectteam","pk":{org * per + local},'
                        f'"fields":{{"project":{PROJECT_BASE + org * pper + j},'
                        f'"team":{TEAM_BASE + org * tper + team}}}}}'
                    )

    def m_projectownership(self) -> Iterator[str]:
        stamp = self.stamp(self.rng("sentry.projectownership"))
        per, pper = self.std["sentry.projectownership"], self.std["sentry.project"]
        raw = _s("path:src/* #backend\nurl:*/checkout/* #payments")
        schema = _j(
            {
                "$version": 1,
                "rules": [
                    {
                        "matcher": {"type": "path", "pattern": "src/*"},
                        "owners": [{"type": "team", "identifier": "backend"}],
                    }
                ],
            }
        )
        for org, _, projects, *_ in self.org_shapes():
            for k in range(projects // 2):
                ts = stamp()
                yield (
                    f'{{"model":"sentry.projectownership","pk":{org * per + k + 1},'
                    f'"fields":{{"project":{PROJECT_BASE + org * pper + 2 * k + 1},'
                    f'"raw":{raw},"schema":{schema},"fallthrough":true,'
                    f'"auto_assignment":true,"date_created":"{ts}","last_updated":"{ts}",'
                    f'"is_active":true,"codeowners_auto_sync":true,'
                    f'"suspect_committer_auto_assignment":false}}}}'
                )

    def m_projectoption(self) -> Iterator[str]:
        rng = self.rng("sentry.projectoption")
        stamp, bits = self.stamp(rng), rng.getrandbits
        per, pper = self.std["sentry.projectoption"], self.std["sentry.project"]
        n = len(PROJECT_OPTION_KEYS)
        for org, _, projects, *_ in self.org_shapes():
            for j in range(projects):
                project = PROJECT_BASE + org * pper + j
                values = (
                    f'"\\"{bits(128):032x}\\""',
                    f'"\\"{stamp()[:-1]}000Z\\""',
                    str(bits(4) + 8),
                    '"[\\"*\\"]"',
                    str(bits(1) * 720),
                    '"true"',
                    f'"\\"{bits(128):032x}\\""',
                    f'"\\"[{self.org_slug(org)}]\\""',
                )
                for k in range(n):
                    yield (
                        f'{{"model":"sentry.projectoption","pk":{org * per + j * n + k + 1},'
                        f'"fields":{{"project":{project},"key":"{PROJECT_OPTION_KEYS[k]}",'
                        f'"value":{values[k]}}}}}'
                    )

    def m_projectkey(self) -> Iterator[str]:
        rng = self.rng("sentry.projectkey")
        stamp, bits = self.stamp(rng), rng.getrandbits
        per, pper = self.std["sentry.projectkey"], self.std["sentry.project"]
        for org, _, projects, *_ in self.org_shapes():
            for j in range(projects):
                for k, label in enumerate(("Default", "Browser")):
                    pk = org * per + 2 * j + k + 1
                    yield (
                        f'{{"model":"sentry.projectkey","pk":{pk},"fields":{{'
                        f'"project":{PROJECT_BASE + org * pper + j},"label":"{label}",'
                        f'"public_key":"{bits(80):020x}{pk:012x}",'
                        f'"secret_key":"{bits(80):020x}{pk:012x}","roles":"1","status":0,'
                        f'"date_added":"{stamp()}","rate_limit_count":null,'
                        f'"rate_limit_window":null,"data":{KEY_DATA[k]},'
                        f'"use_case":"user"}}}}'
                    )

    def m_projectbookmark(self) -> Iterator[str]:
        stamp = self.stamp(self.rng("sentry.projectbookmark"))
        per, pper = self.std["sentry.projectbookmark"], self.std["sentry.project"]
        for org, _, projects, members, _, _ in self.org_shapes():
            local = 0
            for j in range(projects):
                for b in range(min(2, members)):
                    local += 1
                    user = self.user_index(org, (2 * j + b) % members) + 1
                    yield (
                        f'{{"model":"sentry.projectbookmark","pk":{org * per + local},'
                        f'"fields":{{"project":{PROJECT_BASE + org * pper + j},'
                        f'"user_id":{user},"date_added":"{stamp()}"}}}}'
                    )

    def m_organizationmemberteam(self) -> Iterator[str]:
        per = self.std["sentry.organizationmemberteam"]
        mper, tper = self.std["sentry.organizationmember"], self.std["sentry.team"]
        for org, _, _, members, _, teams in self.org_shapes():
            local = 0
            for k in range(members):
                pairs = [k % teams]
                if teams > 1 and k % 2 == 1:
                    pairs.append((k + 1) % teams)
                for team in pairs:
                    local += 1
                    role = '"admin"' if k == 1 else "null"
                    yield (
                        f'{{"model":"sentry.organizationmemberteam","pk":{org * per + local},'
                        f'"fields":{{"team":{TEAM_BASE + org * tper + team},'
                        f'"organizationmember":{org * mper + k + 1},"is_active":true,'
                        f'"role":{role}}}}}'
                    )

    def m_environmentproject(self) -> Iterator[str]:
        per = self.std["sentry.environmentproject"]
        pper, eper = self.std["sentry.project"], self.std["sentry.environment"]
        for org, _, projects, *_ in self.org_shapes():
            for j in range(projects):
                for k in range(eper):
                    hidden = "true" if k == 2 else "null"
                    yield (
                        f'{{"model":"sentry.environmentproject",'
                        f'"pk":{org * per + j * eper + k + 1},'
                        f'"fields":{{"project":{PROJECT_BASE + org * pper + j},'
                        f'"environment":{org * eper + k + 1},"is_hidden":{hidden}}}}}'
                    )

    def m_dashboardwidget(self) -> Iterator[str]:
        stamp = self.stamp(self.rng("sentry.dashboardwidget"))
        per, dper = self.std["sentry.dashboardwidget"], self.std["sentry.dashboard"]
        for org, _, projects, *_ in self.org_shapes():
            for d in range(max(1, projects // 3)):
                for k in range(4):
                    yield (
                        f'{{"model":"sentry.dashboardwidget",'
                        f'"pk":{org * per + 4 * d + k + 1},"fields":{{'
                        f'"dashboard":{org * dper + d + 1},"order":{k},'
                        f'"title":"{WIDGET_TITLES[k]}","description":null,'
                        f'"thresholds":null,"interval":"5m","display_type":{k % 3},'
                        f'"date_added":"{stamp()}","widget_type":0,"limit":null,'
                        f'"detail":null,"discover_widget_split":null,'
                        f'"dataset_source":0}}}}'
                    )

    def m_alertrule(self) -> Iterator[str]:
        rng = self.rng("sentry.alertrule")
        stamp, bits = self.stamp(rng), rng.getrandbits
        per, tper = self.std["sentry.alertrule"], self.std["sentry.team"]
        for org, _, projects, members, _, teams in self.org_shapes():
            for j in range(projects):
                pk = org * per + j + 1
                owner = bits(1)
                user = self.user_index(org, bits(16) % members) + 1 if owner else "null"
                team = "null" if owner else TEAM_BASE + org * tper + bits(16) % teams
                ts = stamp()
                yield (
                    f'{{"model":"sentry.alertrule","pk":{pk},"fields":{{'
                    f'"organization":{ORG_BASE + org},"snuba_query":{pk},"user_id":{user},'
                    f'"team":{team},"name":"{ADJECTIVES[bits(16) % len(ADJECTIVES)]} '
                    f'{ANIMALS[bits(16) % len(ANIMALS)]} alert","status":0,'
                    f'"threshold_type":0,"resolve_threshold":null,"threshold_period":1,'
                    f'"comparison_delta":null,"date_modified":"{ts}","date_added":"{ts}",'
                    f'"monitor_type":0,"description":null,"detection_type":"static",'
                    f'"sensitivity":null,"seasonality":null}}}}'
                )

    def m_snubaqueryeventtype(self) -> Iterator[str]:
        per = self.std["sentry.snubaqueryeventtype"]
        for org, _, projects, *_ in self.org_shapes():
            for j in range(projects):
                pk = org * per + j + 1
                yield (
                    f'{{"model":"sentry.snubaqueryeventtype","pk":{pk},"fields":{{'
                    f'"snuba_query":{pk},"type":{SNUBA_QUERIES[j % 3][5]}}}}}'
                )

    def m_dashboardwidgetquery(self) -> Iterator[str]:
        stamp = self.stamp(self.rng("sentry.dashboardwidgetquery"))
        per = self.std["sentry.dashboardwidgetquery"]
        for org, _, projects, *_ in self.org_shapes():
            for w in range(4 * max(1, projects // 3)):
                pk = org * per + w + 1
                fields, aggregates, columns, aliases, orderby = WIDGET_QUERIES[w % 4]
                ts = stamp()
                yield (
                    f'{{"model":"sentry.dashboardwidgetquery","pk":{pk},"fields":{{'
                    f'"widget":{pk},"name":"","fields":{fields},"conditions":"",'
                    f'"aggregates":{aggregates},"columns":{columns},'
                    f'"field_aliases":{aliases},"orderby":{orderby},"order":0,'
                    f'"date_added":"{ts}","date_modified":"{ts}","is_hidden":false,'
                    f'"selected_aggregate":null}}}}'
                )

    def m_alertruletrigger(self) -> Iterator[str]:
        rng = self.rng("sentry.alertruletrigger")
        stamp, bits = self.stamp(rng), rng.getrandbits
        per, aper = self.std["sentry.alertruletrigger"], self.std["sentry.alertrule"]
        for org, _, projects, *_ in self.org_shapes():
            for j in range(projects):
                critical = float(100 * (bits(4) + 2))
                for k, (label, threshold) in enumerate(
                    (("critical", critical), ("warning", critical / 2))
                ):
                    yield (
                        f'{{"model":"sentry.alertruletrigger",'
                        f'"pk":{org * per + 2 * j + k + 1},"fields":{{'
                        f'"alert_rule":{org * aper + j + 1},"label":"{label}",'
                        f'"threshold_type":null,"alert_threshold":{threshold},'
                        f'"resolve_threshold":null,"date_added":"{stamp()}"}}}}'
                    )

    def m_alertruleprojects(self) -> Iterator[str]:
        stamp = self.stamp(self.rng("sentry.alertruleprojects"))
        per, pper = self.std["sentry.alertruleprojects"], self.std["sentry.project"]
        for org, _, projects, *_ in self.org_shapes():
            for j in range(projects):
                pk = org * per + j + 1
                yield (
                    f'{{"model":"sentry.alertruleprojects","pk":{pk},"fields":{{'
                    f'"alert_rule":{pk},"project":{PROJECT_BASE + org * pper + j},'
                    f'"date_added":"{stamp()}"}}}}'
                )

    def m_alertruleactivity(self) -> Iterator[str]:
        rng = self.rng("sentry.alertruleactivity")
        stamp, bits = self.stamp(rng), rng.getrandbits
        per = self.std["sentry.alertruleactivity"]
        for org, _, projects, members, _, _ in self.org_shapes():
            for j in range(projects):
                pk = org * per + j + 1
                yield (
                    f'{{"model":"sentry.alertruleactivity","pk":{pk},"fields":{{'
                    f'"alert_rule":{pk},"previous_alert_rule":null,'
                    f'"user_id":{self.user_index(org, bits(16) % members) + 1},"type":1,'
                    f'"date_added":"{stamp()}"}}}}'
                )


def _export_models(scope: str) -> list[str]:
    """The generated models, in the registry's (Sentry's export) order."""
    from relocate.schemas.registry import Registry

    wanted = set(org_counts(scope=scope)) | set(_fixed_counts())
    return [m.name for m in Registry.load().models if m.name in wanted]


def iter_rows(plan: Plan, seed: int = 0) -> Iterator[str]:
    """Every row of the export as compact JSON text, in export order."""
    rows = _Rows(plan, seed)
    for model in _export_models(plan.scope):
        yield from getattr(rows, "m_" + model.split(".", 1)[1])()


def _chunks(rows: Iterable[str], size: int = _CHUNK_ROWS) -> Iterator[list[str]]:
    it = iter(rows)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _write_array(out: BinaryIO, chunks: Iterable[list[str]]) -> int:
    """Writes rows as a JSON array, one row per line; returns the row count."""
    n = 0
    out.write(b"[\n")
    for chunk in chunks:
        if n:
            out.write(b",\n")
        out.write(",\n".join(chunk).encode("utf-8"))
        n += len(chunk)
    out.write(b"\n]\n")
    return n


def _shuffled_chunks(
    rows: Iterable[str], total: int, seed: int, tmp_dir: str | None
) -> Iterator[list[str]]:
    """A bounded-memory shuffle: scatter to bucket files at random, shuffle each bucket."""
    buckets = min(_MAX_BUCKETS, max(1, math.ceil(total / _BUCKET_ROWS)))
    rng = random.Random(f"{seed}:shuffle")
    pick = rng.random
    with tempfile.TemporaryDirectory(prefix="relocate-generate-", dir=tmp_dir) as tmp:
        paths = [Path(tmp, f"bucket-{b:04d}") for b in range(buckets)]
        files = [p.open("w", encoding="utf-8", buffering=1 << 16) for p in paths]
        try:
            pending: list[list[str]] = [[] for _ in range(buckets)]
            for row in rows:
                b = int(pick() * buckets)
                bucket = pending[b]
                bucket.append(row)
                if len(bucket) >= 512:
                    files[b].write("\n".join(bucket) + "\n")
                    bucket.clear()
            for b, bucket in enumerate(pending):
                if bucket:
                    files[b].write("\n".join(bucket) + "\n")
        finally:
            for f in files:
                f.close()
        for b, path in enumerate(paths):
            lines = path.read_text("utf-8").splitlines()
            path.unlink()
            random.Random(f"{seed}:shuffle:{b}").shuffle(lines)
            yield from _chunks(lines)


@dataclass(frozen=True)
class GenerateResult:
    """What ``generate`` wrote."""

    rows: int
    orgs: int
    seconds: float


def generate(
    out: BinaryIO,
    rows: int,
    seed: int = 0,
    scope: str = "organizations",
    shuffle: bool = False,
    tmp_dir: str | None = None,
) -> GenerateResult:
    """Writes a synthetic export of about ``rows`` rows to the binary stream ``out``.

    Args:
        out: where the JSON array goes (a file opened ``wb``, or ``sys.stdout.buffer``).
        rows: the wanted total row count.
        seed: the same seed gives the same bytes.
        scope: ``organizations``, or ``global`` to add Global-scope models.
        shuffle: write the rows in a random (seeded) order instead of export order.
        tmp_dir: where the shuffle's bucket files go (default: the system's temp dir).
    """
    start = time.perf_counter()
    plan = plan_export(rows, scope)
    stream = iter_rows(plan, seed)
    if shuffle:
        written = _write_array(out, _shuffled_chunks(stream, plan.total, seed, tmp_dir))
    else:
        written = _write_array(out, _chunks(stream))
    out.flush()
    return GenerateResult(written, plan.orgs, time.perf_counter() - start)


def run_generate(args: argparse.Namespace) -> int:
    """The ``relocate generate`` command; returns the exit status."""
    if args.rows < 1:
        print("Error: --rows must be a positive number", file=sys.stderr)
        return 2
    if args.out == "-":
        try:
            result = generate(sys.stdout.buffer, args.rows, args.seed, args.scope, args.shuffle)
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as other Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        where = "standard output"
    else:
        out_path = Path(args.out)
        tmp_dir = str(out_path.resolve().parent)
        # Written beside itself and renamed: a half-written export never has OUT's name.
        fd, partial = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb", buffering=1 << 20) as f:
                result = generate(f, args.rows, args.seed, args.scope, args.shuffle, tmp_dir)
            os.chmod(partial, 0o644)
            os.replace(partial, out_path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        where = str(out_path)
    if not args.quiet:
        rate = result.rows / result.seconds if result.seconds else 0.0
        print(
            f"Wrote {result.rows:,} rows ({result.orgs:,} organizations) to {where} in "
            f"{result.seconds:.1f} s ({rate:,.0f} rows/s).",
            file=sys.stderr,
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds ``generate OUT --rows N [--seed S] [--scope ...] [--shuffle]`` to a CLI.

    Sets ``func`` on the namespace: ``args.func(args)`` runs it and returns the exit
    status.
    """
    parser = subparsers.add_parser(
        "generate",
        help="write a realistic synthetic Sentry export",
        description="Write a synthetic Sentry export of about N rows: organizations with "
        "their users, members, teams, projects, keys, options, alert rules, "
        "dashboards and monitors, in Sentry's export format.",
    )
    parser.add_argument("out", metavar="OUT", help="the export file to write ('-': stdout)")
    parser.add_argument(
        "--rows",
        type=int,
        required=True,
        metavar="N",
        help="total rows, approximately (whole organizations, within 1%%)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the same seed gives the same bytes (default 0)"
    )
    parser.add_argument(
        "--scope",
        choices=GEN_SCOPES,
        default="organizations",
        help="'global' adds Global-scope models (user IPs, authenticators, "
        "API applications, integrations)",
    )
    parser.add_argument(
        "--shuffle", action="store_true", help="rows in a random order instead of export order"
    )
    parser.add_argument("--quiet", action="store_true", help="no summary line on stderr")
    parser.set_defaults(func=run_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m relocate.generate OUT --rows N ...``: the command without the CLI."""
    parser = argparse.ArgumentParser(prog="python -m relocate.generate")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["generate", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
