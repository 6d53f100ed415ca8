"""The table of generated models: which rows each organization gets and how each value is made.

Every model is a ``Model``: its name, the pk of its first row, and one or more runs of
``Rows``, each hanging off a ``Parent`` (the organization, its users, members, projects ...)
with ``per_parent`` rows per parent. A run lists its fields in output order; each field's
value is JSON text with ``{expression}`` holes, or a Python constant written as JSON. The
engine (``engine.py``) compiles every model into one generator function, so the table costs
nothing per row over hand-written code.

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

Names an expression may use (all ints unless said otherwise):

* the organization: ``org`` (0-based), ``users``, ``projects``, ``members`` (users with a
  membership: the first ``members`` users), ``invites`` (pending invitations), ``teams``,
  ``dashboards``, ``user0`` (the export-wide index of its first user);
* the parent: ``parent``, its index among its kind (a project's index among the
  organization's projects, also for ``ODD_PROJECTS``: 1, 3, 5 ...);
* the row: ``child`` (0, 1, ... under its parent), ``local`` (its index among the model's
  rows in the organization) and ``pk``;
* the model's random stream: ``bits(k)``, ``rand()``, ``randrange(k)``;
* the seed's tables: ``ts`` and ``quoted_ts`` (the timestamp pool, see ``values.STAMP``),
  ``name_of(user)``, ``email_of(user)``, ``second_email_of(user)``, ``org_slug(org)``;
* ``pk_of("sentry.<model>", index)``: the pk of the organization's ``index``-th row of that
  model, i.e. a foreign key (pks are arithmetic: organization ``o``'s ``k``-th row of model
  M has pk ``first_pk + o * rows of M in a standard organization + k``);
* the names in ``values.EXPRESSION_GLOBALS`` (word lists, JSON constants, helpers).

Random values are drawn only in ``org_let``, ``parent_let`` and ``let`` (each evaluated in
order, so the draw order, which decides the bytes, reads top to bottom); the engine
rejects a field that draws.
"""

from __future__ import annotations

from dataclasses import dataclass

from relocate.generate.values import QUOTED_STAMP, STAMP

#: The standard organization: users and projects; everything else derives from them.
STD_USERS = 50
STD_PROJECTS = 10

# Snowflake-like id bases (Sentry's organizations, teams and projects have 16-digit ids).
ORG_BASE = 4_554_274_226_110_464
TEAM_BASE = 4_554_275_000_000_000
PROJECT_BASE = 4_554_276_000_000_000

#: ``(target, expression)`` pairs run in order: ``target = expression`` (a target may
#: unpack: ``"first, last"``).
Let = tuple[tuple[str, str], ...]
#: A field's value: JSON text with ``{expression}`` holes (string literals inside the holes
#: in double quotes, ``{{``/``}}`` for literal braces), or a constant (``None``, a bool, a
#: number, a dict or list) written as compact JSON.
FieldValue = str | int | float | bool | None | dict | list
Fields = tuple[tuple[str, FieldValue], ...]


@dataclass(frozen=True)
class Parent:
    """What a run of rows hangs off inside one organization.

    Attributes:
        name: what one parent is (a comment in the compiled code).
        count: expression over the organization's names: how many parents it has.
        index: expression of ``n`` (0, 1, ... ``count`` - 1): the ``n``-th parent's index
            among its kind (``parent`` in the run's expressions).
    """

    name: str
    count: str
    index: str = "n"


ORGANIZATION = Parent("organization", "1")
#: The one parent of a model written once per export (``Model.once``).
INSTALLATION = Parent("installation", "1")
USERS = Parent("user", "users")
MEMBERS = Parent("member", "members")
INVITES = Parent("invitation", "invites")
TEAMS = Parent("team", "teams")
PROJECTS = Parent("project", "projects")
#: Every other project, from the second: 1, 3, 5 ...
ODD_PROJECTS = Parent("every other project", "projects // 2", "2 * n + 1")
DASHBOARDS = Parent("dashboard", "dashboards")
#: Every fifth user from the first: 0, 5, 10 ...
FIFTH_USERS = Parent("every fifth user", "users // 5", "5 * n")
#: Every fifth user from the fifth, the users with a second email address: 4, 9, 14 ...
SECOND_EMAIL_USERS = Parent("user with a second address", "users // 5", "5 * n + 4")


@dataclass(frozen=True)
class Rows:
    """A run of rows of one model: ``per_parent`` rows for every parent.

    Attributes:
        parent: what the rows hang off.
        per_parent: rows per parent: a number, or an expression (of the organization's
            names and ``parent``).
        parent_let: values computed once per parent, before its rows.
        let: values computed per row, before it is written.
        fields: the row's fields, in output order.
    """

    parent: Parent
    per_parent: int | str = 1
    parent_let: Let = ()
    let: Let = ()
    fields: Fields = ()


@dataclass(frozen=True)
class Model:
    """One generated model.

    Attributes:
        name: the model, ``sentry.<name>``.
        rows: its run of rows, or several runs one after the other (their pks continue).
        first_pk: the pk of the first organization's first row.
        org_let: values computed once per organization, before its rows.
        scope: ``organizations``, or ``global`` for models only Global scope imports.
        once: written once per export (installation options), not per organization.
    """

    name: str
    rows: Rows | tuple[Rows, ...]
    first_pk: int = 1
    org_let: Let = ()
    scope: str = "organizations"
    once: bool = False

    @property
    def runs(self) -> tuple[Rows, ...]:
        """The runs of rows, in order."""
        return self.rows if isinstance(self.rows, tuple) else (self.rows,)


def _owner_user_or_team(kind_bits: int) -> Let:
    """``owner`` (random ``kind_bits``), then the owning user (1) or team (2), else null."""
    return (
        ("owner", f"bits({kind_bits})"),
        ("owner_user", 'pk_of("sentry.user", bits(16) % members) if owner == 1 else "null"'),
        ("owner_team", 'pk_of("sentry.team", bits(16) % teams) if owner == 2 else "null"'),
    )


#: Every generated model, in Sentry's export order (the engine writes them in the
#: registry's order, which is the same).
MODELS: tuple[Model, ...] = (
    Model(
        "sentry.integration",
        Rows(
            ORGANIZATION,
            let=(("stamp", STAMP), ("slug", "org_slug(org)")),
            fields=(
                ("date_updated", '"{stamp}"'),
                ("date_added", '"{stamp}"'),
                ("provider", '"github"'),
                ("external_id", '"{7_100_000 + org}"'),
                ("name", '"{slug}"'),
                (
                    "metadata",
                    '{{"access_token":null,"expires_at":null,"icon":'
                    '"https://avatars.githubusercontent.com/u/{7_100_000 + org}?v=4",'
                    '"domain_name":"github.com/{slug}","account_type":"Organization"}}',
                ),
                ("status", 0),
            ),
        ),
        scope="global",
    ),
    Model(
        "sentry.option",
        Rows(
            INSTALLATION,
            per_parent="len(INSTALL_OPTIONS)",
            let=(("key, value", "INSTALL_OPTIONS[child]"), ("stamp", STAMP)),
            fields=(
                ("key", "{key}"),
                ("last_updated", '"{stamp}"'),
                ("last_updated_by", '"unknown"'),
                ("value", "{value}"),
            ),
        ),
        once=True,
    ),
    Model(
        "sentry.organization",
        Rows(
            ORGANIZATION,
            let=(("slug", "org_slug(org)"), ("stamp", STAMP)),
            fields=(
                ("name", '"{org_display_name(slug)} {org + 1}"'),
                ("slug", '"{slug}"'),
                ("status", 0),
                ("date_added", '"{stamp}"'),
                ("default_role", '"member"'),
                ("is_test", False),
                ("flags", '"1"'),
            ),
        ),
        first_pk=ORG_BASE,
    ),
    Model(
        "sentry.organizationintegration",
        Rows(
            ORGANIZATION,
            let=(("stamp", STAMP),),
            fields=(
                ("date_updated", '"{stamp}"'),
                ("date_added", '"{stamp}"'),
                ("organization_id", '{pk_of("sentry.organization", 0)}'),
                ("integration", '{pk_of("sentry.integration", 0)}'),
                ("config", {}),
                ("default_auth_id", None),
                ("status", 0),
                ("grace_period_end", None),
            ),
        ),
        scope="global",
    ),
    Model(
        "sentry.organizationoption",
        Rows(
            ORGANIZATION,
            per_parent="len(ORG_OPTIONS)",
            let=(("key, value", "ORG_OPTIONS[child]"),),
            fields=(
                ("organization", '{pk_of("sentry.organization", 0)}'),
                ("key", '"{key}"'),
                ("value", "{value}"),
            ),
        ),
    ),
    Model(
        "sentry.team",
        Rows(
            TEAMS,
            let=(("name", "TEAM_NAMES[(shift + parent) % len(TEAM_NAMES)]"), ("stamp", STAMP)),
            fields=(
                ("organization", '{pk_of("sentry.organization", 0)}'),
                ("slug", '"{name}"'),
                ("name", '"{name.capitalize()}"'),
                ("status", 0),
                ("idp_provisioned", False),
                ("date_added", '"{stamp}"'),
            ),
        ),
        first_pk=TEAM_BASE,
        # Consecutive names from a random start: no two teams of an organization share one.
        org_let=(("shift", "randrange(len(TEAM_NAMES))"),),
    ),
    Model(
        "sentry.user",
        Rows(
            USERS,
            let=(
                ("first, last", "name_of(user0 + parent)"),
                ("email", "email_of(user0 + parent)"),
                ("salt", "bits(72)"),
                ("digest", "base64_of(bits(256), 32)"),
                ("active", '"false" if rand() < 0.1 else "true"'),
                ("last_login", f'{QUOTED_STAMP} if rand() < 0.8 else "null"'),
                ("joined", STAMP),
                ("last_active", STAMP),
            ),
            fields=(
                ("password", '"pbkdf2_sha256$600000${salt:018x}${digest}"'),
                ("last_login", "{last_login}"),
                ("username", '"{email}"'),
                ("name", '"{first.capitalize()} {last.capitalize()}"'),
                ("email", '"{email}"'),
                ("is_staff", False),
                ("is_active", "{active}"),
                ("is_unclaimed", False),
                ("is_superuser", False),
                ("is_managed", False),
                ("is_sentry_app", None),
                ("is_password_expired", False),
                ("last_password_change", '"{joined}"'),
                ("flags", '"0"'),
                ("session_nonce", None),
                ("date_joined", '"{joined}"'),
                ("last_active", '"{last_active}"'),
                ("avatar_type", 0),
                ("avatar_url", None),
            ),
        ),
    ),
    Model(
        "sentry.userip",
        Rows(
            USERS,
            let=(
                ("country, region", "COUNTRIES[bits(3)]"),
                ("ip", 'f"{bits(7) + 20}.{bits(8)}.{bits(8)}.{bits(8) or 1}"'),
                ("first_seen", STAMP),
                ("last_seen", f"max(first_seen, {STAMP})"),
            ),
            fields=(
                ("user", '{pk_of("sentry.user", parent)}'),
                ("ip_address", '"{ip}"'),
                ("country_code", '"{country}"'),
                ("region_code", '"{region}"'),
                ("first_seen", '"{first_seen}"'),
                ("last_seen", '"{last_seen}"'),
            ),
        ),
        scope="global",
    ),
    Model(
        "sentry.savedsearch",
        Rows(
            ORGANIZATION,
            per_parent="len(SAVED_SEARCHES)",
            let=(("name, query", "SAVED_SEARCHES[child]"), ("stamp", STAMP)),
            fields=(
                ("organization", '{pk_of("sentry.organization", 0)}'),
                ("type", 0),
                ("name", '"{name}"'),
                ("query", '"{query}"'),
                ("sort", '"date"'),
                ("date_added", '"{stamp}"'),
                ("is_global", False),
                ("owner_id", '{pk_of("sentry.user", 0)}'),
                ("visibility", '"organization"'),
            ),
        ),
    ),
    Model(
        "sentry.recentsearch",
        Rows(
            MEMBERS,
            let=(
                ("query", "RECENT_QUERIES[bits(16) % len(RECENT_QUERIES)]"),
                ("stamp", STAMP),
                ("query_hash", "bits(128)"),
            ),
            fields=(
                ("organization", '{pk_of("sentry.organization", 0)}'),
                ("user_id", '{pk_of("sentry.user", parent)}'),
                ("type", 0),
                ("query", '"{query}"'),
                ("query_hash", '"{query_hash:032x}"'),
                ("last_seen", '"{stamp}"'),
                ("date_added", '"{stamp}"'),
            ),
        ),
    ),
    Model(
        "sentry.project",
        Rows(
            PROJECTS,
            let=(
                ("slug", "PROJECT_NAMES[(shift + parent) % len(PROJECT_NAMES)]"),
                ("platform", "PLATFORMS_JSON[randrange(len(PLATFORMS_JSON))]"),
                ("first_event", f'{QUOTED_STAMP} if rand() < 0.9 else "null"'),
                ("added", STAMP),
            ),
            fields=(
                ("slug", '"{slug}"'),
                ("name", '"{slug}"'),
                ("forced_color", None),
                ("organization", '{pk_of("sentry.organization", 0)}'),
                ("public", False),
                ("date_added", '"{added}"'),
                ("status", 0),
                ("first_event", "{first_event}"),
                ("template", None),
                ("flags", '"10"'),
                ("platform", "{platform}"),
            ),
        ),
        first_pk=PROJECT_BASE,
        # Consecutive names from a random start: no two projects of an organization share one.
        org_let=(("shift", "randrange(len(PROJECT_NAMES))"),),
    ),
    Model(
        "sentry.organizationmember",
        (
            Rows(
                MEMBERS,
                let=(
                    ("role", 'ROLES[parent] if parent < len(ROLES) else "member"'),
                    ("inviter", 'pk_of("sentry.user", 0) if parent and bits(1) else "null"'),
                    ("added", STAMP),
                ),
                fields=(
                    ("organization", '{pk_of("sentry.organization", 0)}'),
                    ("user_id", '{pk_of("sentry.user", parent)}'),
                    ("email", None),
                    ("role", '"{role}"'),
                    ("flags", '"0"'),
                    ("token", None),
                    ("date_added", '"{added}"'),
                    ("token_expires_at", None),
                    ("has_global_access", True),
                    ("inviter_id", "{inviter}"),
                    ("invite_status", 0),
                    ("type", 50),
                    ("user_is_active", True),
                    ("user_email", '"{email_of(user0 + parent)}"'),
                ),
            ),
            # Pending invitations by email, from the owner.
            Rows(
                INVITES,
                let=(
                    ("added", STAMP),
                    ("token", "bits(128)"),
                    ("expires", f"max(added, {STAMP})"),
                ),
                fields=(
                    ("organization", '{pk_of("sentry.organization", 0)}'),
                    ("user_id", None),
                    ("email", '"invitee{pk}@{DOMAINS[pk % len(DOMAINS)]}"'),
                    ("role", '"member"'),
                    ("flags", '"0"'),
                    ("token", '"{token:032x}{pk:016x}"'),
                    ("date_added", '"{added}"'),
                    ("token_expires_at", '"{expires}"'),
                    ("has_global_access", True),
                    ("inviter_id", '{pk_of("sentry.user", 0)}'),
                    ("invite_status", 1),
                    ("type", 50),
                    ("user_is_active", True),
                    ("user_email", None),
                ),
            ),
        ),
    ),
    Model(
        "sentry.monitor",
        Rows(
            ODD_PROJECTS,
            let=(
                *_owner_user_or_team(kind_bits=2),
                ("guid", 'guid_of(f"{bits(80):020x}{pk:012x}")'),
                ("added", STAMP),
                ("config", "MONITOR_CONFIGS[bits(16) % len(MONITOR_CONFIGS)]"),
            ),
            fields=(
                ("date_added", '"{added}"'),
                ("organization_id", '{pk_of("sentry.organization", 0)}'),
                ("project_id", '{pk_of("sentry.project", parent)}'),
                ("status", 0),
                ("guid", '"{guid}"'),
                ("slug", '"nightly-job-{local + 1}"'),
                ("is_muted", False),
                ("name", '"Nightly job {local + 1}"'),
                ("type", 3),
                ("owner_user_id", "{owner_user}"),
                ("owner_team_id", "{owner_team}"),
                ("config", "{config}"),
            ),
        ),
    ),
    Model(
        "sentry.environment",
        Rows(
            ORGANIZATION,
            per_parent="len(ENVIRONMENTS)",
            let=(("stamp", STAMP),),
            fields=(
                ("organization_id", '{pk_of("sentry.organization", 0)}'),
                ("name", '"{ENVIRONMENTS[child]}"'),
                ("date_added", '"{stamp}"'),
            ),
        ),
    ),
    Model(
        "sentry.email",
        (
            Rows(
                USERS,
                let=(("stamp", STAMP),),
                fields=(
                    ("email", '"{email_of(user0 + parent)}"'),
                    ("date_added", '"{stamp}"'),
                ),
            ),
            Rows(
                SECOND_EMAIL_USERS,
                let=(("stamp", STAMP),),
                fields=(
                    ("email", '"{second_email_of(user0 + parent)}"'),
                    ("date_added", '"{stamp}"'),
                ),
            ),
        ),
    ),
    Model(
        "sentry.dashboard",
        Rows(
            DASHBOARDS,
            let=(
                ("filters", 'DASHBOARD_FILTERS if bits(1) else "null"'),
                ("creator", 'pk_of("sentry.user", bits(16) % members)'),
                ("added", STAMP),
                ("visits", "bits(10) + 1"),
                ("visited", STAMP),
            ),
            fields=(
                ("title", '"{DASHBOARD_TITLES[parent]}"'),
                ("created_by_id", "{creator}"),
                ("organization", '{pk_of("sentry.organization", 0)}'),
                ("date_added", '"{added}"'),
                ("visits", "{visits}"),
                ("last_visited", '"{visited}"'),
                ("filters", "{filters}"),
            ),
        ),
    ),
    Model(
        "sentry.counter",
        Rows(
            PROJECTS,
            let=(("value", "bits(14) + 1"),),
            fields=(
                ("project", '{pk_of("sentry.project", parent)}'),
                ("value", "{value}"),
            ),
        ),
    ),
    Model(
        "sentry.authenticator",
        Rows(
            FIFTH_USERS,
            let=(("stamp", STAMP),),
            fields=(
                ("user", '{pk_of("sentry.user", parent)}'),
                ("created_at", '"{stamp}"'),
                ("last_used_at", None),
                ("type", 1),  # recovery codes
                ("config", '"\\"\\""'),  # the JSON string '""'
            ),
        ),
        scope="global",
    ),
    Model(
        "sentry.apiapplication",
        Rows(
            ORGANIZATION,
            let=(
                ("adjective", "ADJECTIVES[bits(16) % len(ADJECTIVES)]"),
                ("animal", "ANIMALS[bits(16) % len(ANIMALS)]"),
                ("client_id", "bits(208)"),
                ("client_secret", "bits(256)"),
                ("added", STAMP),
            ),
            fields=(
                ("client_id", '"{client_id:052x}{pk:012x}"'),
                ("client_secret", '"{client_secret:064x}"'),
                ("owner", '{pk_of("sentry.user", 0)}'),
                ("name", '"{adjective.capitalize()} {animal.capitalize()}"'),
                ("status", 0),
                ("allowed_origins", '""'),
                ("redirect_uris", '"https://{org_slug(org)}.example.com/oauth/callback"'),
                ("homepage_url", None),
                ("privacy_url", None),
                ("terms_url", None),
                ("date_added", '"{added}"'),
                ("scopes", []),
                ("requires_org_level_access", False),
                ("version", 0),
            ),
        ),
        scope="global",
    ),
    Model(
        "sentry.useroption",
        Rows(
            USERS,
            per_parent="len(USER_OPTION_KEYS)",
            parent_let=(
                ("tz", "TIMEZONES[bits(16) % len(TIMEZONES)]"),
                ("language", "LANGUAGES[bits(16) % len(LANGUAGES)]"),
            ),
            fields=(
                ("user", '{pk_of("sentry.user", parent)}'),
                ("project_id", None),
                ("organization_id", None),
                ("key", '"{USER_OPTION_KEYS[child]}"'),
                ("value", '"\\"{language if child else tz}\\""'),
            ),
        ),
    ),
    Model(
        "sentry.useremail",
        (
            Rows(
                USERS,
                let=(("validation_hash", "bits(128)"), ("stamp", STAMP)),
                fields=(
                    ("user", '{pk_of("sentry.user", parent)}'),
                    ("email", '"{email_of(user0 + parent)}"'),
                    ("validation_hash", '"{validation_hash:032x}"'),
                    ("date_hash_added", '"{stamp}"'),
                    ("is_verified", True),
                ),
            ),
            Rows(
                SECOND_EMAIL_USERS,
                let=(
                    ("verified", '"true" if bits(1) else "false"'),
                    ("validation_hash", "bits(128)"),
                    ("stamp", STAMP),
                ),
                fields=(
                    ("user", '{pk_of("sentry.user", parent)}'),
                    ("email", '"{second_email_of(user0 + parent)}"'),
                    ("validation_hash", '"{validation_hash:032x}"'),
                    ("date_hash_added", '"{stamp}"'),
                    ("is_verified", "{verified}"),
                ),
            ),
        ),
    ),
    Model(
        "sentry.snubaquery",
        Rows(
            PROJECTS,
            let=(
                ("kind, dataset, query, aggregate, window, _", "SNUBA_QUERIES[parent % 3]"),
                ("environment", 'pk_of("sentry.environment", 0) if bits(1) else "null"'),
                ("stamp", STAMP),
            ),
            fields=(
                ("environment", "{environment}"),
                ("type", "{kind}"),
                ("dataset", '"{dataset}"'),
                ("query", '"{query}"'),
                ("aggregate", '"{aggregate}"'),
                ("time_window", "{window}"),
                ("resolution", 60),
                ("date_added", '"{stamp}"'),
            ),
        ),
    ),
    Model(
        "sentry.rule",
        Rows(
            PROJECTS,
            per_parent="len(RULE_LABELS)",
            let=(
                *_owner_user_or_team(kind_bits=2),
                (
                    "environment",
                    'pk_of("sentry.environment", bits(16) % 3) if bits(1) else "null"',
                ),
                ("stamp", STAMP),
            ),
            fields=(
                ("project", '{pk_of("sentry.project", parent)}'),
                ("environment_id", "{environment}"),
                ("label", '"{RULE_LABELS[child]}"'),
                ("data", "{RULE_DATA[child]}"),
                ("status", 0),
                ("source", 0),
                ("owner_user_id", "{owner_user}"),
                ("owner_team", "{owner_team}"),
                ("date_added", '"{stamp}"'),
            ),
        ),
    ),
    Model(
        "sentry.querysubscription",
        Rows(
            PROJECTS,
            let=(("stamp", STAMP), ("partition", "bits(6)"), ("subscription", "bits(96)")),
            fields=(
                ("project", '{pk_of("sentry.project", parent)}'),
                ("snuba_query", '{pk_of("sentry.snubaquery", parent)}'),
                ("type", '"incidents"'),
                ("status", 0),
                ("subscription_id", '"{partition}/{subscription:024x}{pk:08x}"'),
                ("date_added", '"{stamp}"'),
                ("date_updated", '"{stamp}"'),
                ("query_extra", None),
            ),
        ),
    ),
    Model(
        "sentry.projectteam",
        Rows(
            PROJECTS,
            # Every fifth project (4, 9 ...) also belongs to the next team.
            per_parent="2 if teams > 1 and parent % 5 == 4 else 1",
            fields=(
                ("project", '{pk_of("sentry.project", parent)}'),
                ("team", '{pk_of("sentry.team", (parent + child) % teams)}'),
            ),
        ),
    ),
    Model(
        "sentry.projectownership",
        Rows(
            ODD_PROJECTS,
            let=(("stamp", STAMP),),
            fields=(
                ("project", '{pk_of("sentry.project", parent)}'),
                ("raw", "{OWNERSHIP_RAW}"),
                ("schema", "{OWNERSHIP_SCHEMA}"),
                ("fallthrough", True),
                ("auto_assignment", True),
                ("date_created", '"{stamp}"'),
                ("last_updated", '"{stamp}"'),
                ("is_active", True),
                ("codeowners_auto_sync", True),
                ("suspect_committer_auto_assignment", False),
            ),
        ),
    ),
    Model(
        "sentry.projectoption",
        Rows(
            PROJECTS,
            per_parent="len(PROJECT_OPTION_KEYS)",
            parent_let=(
                ("relay_rev", "bits(128)"),
                ("relay_rev_changed", STAMP),
                ("epoch", "bits(4) + 8"),
                ("resolve_age", "bits(1) * 720"),
                ("token", "bits(128)"),
                (
                    "values",
                    "project_option_values(relay_rev, relay_rev_changed, epoch, resolve_age,"
                    " token, org_slug(org))",
                ),
            ),
            fields=(
                ("project", '{pk_of("sentry.project", parent)}'),
                ("key", '"{PROJECT_OPTION_KEYS[child]}"'),
                ("value", "{values[child]}"),
            ),
        ),
    ),
    Model(
        "sentry.projectkey",
        Rows(
            PROJECTS,
            per_parent="len(KEY_LABELS)",
            let=(("public", "bits(80)"), ("secret", "bits(80)"), ("stamp", STAMP)),
            fields=(
                ("project", '{pk_of("sentry.project", parent)}'),
                ("label", '"{KEY_LABELS[child]}"'),
                ("public_key", '"{public:020x}{pk:012x}"'),
                ("secret_key", '"{secret:020x}{pk:012x}"'),
                ("roles", '"1"'),
                ("status", 0),
                ("date_added", '"{stamp}"'),
                ("rate_limit_count", None),
                ("rate_limit_window", None),
                ("data", "{KEY_DATA[child]}"),
                ("use_case", '"user"'),
            ),
        ),
    ),
    Model(
        "sentry.projectbookmark",
        Rows(
            PROJECTS,
            per_parent="min(2, members)",
            let=(("stamp", STAMP),),
            fields=(
                ("project", '{pk_of("sentry.project", parent)}'),
                ("user_id", '{pk_of("sentry.user", (2 * parent + child) % members)}'),
                ("date_added", '"{stamp}"'),
            ),
        ),
    ),
    Model(
        "sentry.organizationmemberteam",
        Rows(
            MEMBERS,
            # Every other member (1, 3 ...) also belongs to the next team.
            per_parent="2 if teams > 1 and parent % 2 == 1 else 1",
            let=(("role", '"\\"admin\\"" if parent == 1 else "null"'),),
            fields=(
                ("team", '{pk_of("sentry.team", (parent + child) % teams)}'),
                ("organizationmember", '{pk_of("sentry.organizationmember", parent)}'),
                ("is_active", True),
                ("role", "{role}"),
            ),
        ),
    ),
    Model(
        "sentry.environmentproject",
        Rows(
            PROJECTS,
            per_parent="len(ENVIRONMENTS)",
            fields=(
                ("project", '{pk_of("sentry.project", parent)}'),
                ("environment", '{pk_of("sentry.environment", child)}'),
                ("is_hidden", '{"true" if child == 2 else "null"}'),
            ),
        ),
    ),
    Model(
        "sentry.dashboardwidget",
        Rows(
            DASHBOARDS,
            per_parent="len(WIDGET_TITLES)",
            let=(("stamp", STAMP),),
            fields=(
                ("dashboard", '{pk_of("sentry.dashboard", parent)}'),
                ("order", "{child}"),
                ("title", '"{WIDGET_TITLES[child]}"'),
                ("description", None),
                ("thresholds", None),
                ("interval", '"5m"'),
                ("display_type", "{child % 3}"),
                ("date_added", '"{stamp}"'),
                ("widget_type", 0),
                ("limit", None),
                ("detail", None),
                ("discover_widget_split", None),
                ("dataset_source", 0),
            ),
        ),
    ),
    Model(
        "sentry.alertrule",
        Rows(
            PROJECTS,
            let=(
                ("by_user", "bits(1)"),
                ("user", 'pk_of("sentry.user", bits(16) % members) if by_user else "null"'),
                ("team", '"null" if by_user else pk_of("sentry.team", bits(16) % teams)'),
                ("stamp", STAMP),
                ("adjective", "ADJECTIVES[bits(16) % len(ADJECTIVES)]"),
                ("animal", "ANIMALS[bits(16) % len(ANIMALS)]"),
            ),
            fields=(
                ("organization", '{pk_of("sentry.organization", 0)}'),
                ("snuba_query", '{pk_of("sentry.snubaquery", parent)}'),
                ("user_id", "{user}"),
                ("team", "{team}"),
                ("name", '"{adjective} {animal} alert"'),
                ("status", 0),
                ("threshold_type", 0),
                ("resolve_threshold", None),
                ("threshold_period", 1),
                ("comparison_delta", None),
                ("date_modified", '"{stamp}"'),
                ("date_added", '"{stamp}"'),
                ("monitor_type", 0),
                ("description", None),
                ("detection_type", '"static"'),
                ("sensitivity", None),
                ("seasonality", None),
            ),
        ),
    ),
    Model(
        "sentry.snubaqueryeventtype",
        Rows(
            PROJECTS,
            fields=(
                ("snuba_query", '{pk_of("sentry.snubaquery", parent)}'),
                ("type", "{SNUBA_QUERIES[parent % 3][5]}"),
            ),
        ),
    ),
    Model(
        "sentry.dashboardwidgetquery",
        Rows(
            DASHBOARDS,
            per_parent="len(WIDGET_TITLES)",
            let=(
                ("fields, aggregates, columns, aliases, orderby", "WIDGET_QUERIES[child]"),
                ("stamp", STAMP),
            ),
            fields=(
                ("widget", '{pk_of("sentry.dashboardwidget", local)}'),
                ("name", '""'),
                ("fields", "{fields}"),
                ("conditions", '""'),
                ("aggregates", "{aggregates}"),
                ("columns", "{columns}"),
                ("field_aliases", "{aliases}"),
                ("orderby", "{orderby}"),
                ("order", 0),
                ("date_added", '"{stamp}"'),
                ("date_modified", '"{stamp}"'),
                ("is_hidden", False),
                ("selected_aggregate", None),
            ),
        ),
    ),
    Model(
        "sentry.alertruletrigger",
        Rows(
            PROJECTS,
            per_parent="len(TRIGGER_LABELS)",
            parent_let=(("critical", "float(100 * (bits(4) + 2))"),),
            let=(("stamp", STAMP),),
            fields=(
                ("alert_rule", '{pk_of("sentry.alertrule", parent)}'),
                ("label", '"{TRIGGER_LABELS[child]}"'),
                ("threshold_type", None),
                ("alert_threshold", "{critical / 2 if child else critical}"),
                ("resolve_threshold", None),
                ("date_added", '"{stamp}"'),
            ),
        ),
    ),
    Model(
        "sentry.alertruleprojects",
        Rows(
            PROJECTS,
            let=(("stamp", STAMP),),
            fields=(
                ("alert_rule", '{pk_of("sentry.alertrule", parent)}'),
                ("project", '{pk_of("sentry.project", parent)}'),
                ("date_added", '"{stamp}"'),
            ),
        ),
    ),
    Model(
        "sentry.alertruleactivity",
        Rows(
            PROJECTS,
            let=(("user", 'pk_of("sentry.user", bits(16) % members)'), ("stamp", STAMP)),
            fields=(
                ("alert_rule", '{pk_of("sentry.alertrule", parent)}'),
                ("previous_alert_rule", None),
                ("user_id", "{user}"),
                ("type", 1),  # created
                ("date_added", '"{stamp}"'),
            ),
        ),
    ),
)

#: The models only Global scope imports.
GLOBAL_ONLY = tuple(model.name for model in MODELS if model.scope == "global")
