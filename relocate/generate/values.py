"""The vocabulary of the model table: word lists, JSON constants and per-seed lookups.

The value expressions in ``models.MODELS`` name things defined here (``TIMEZONES``,
``RULE_DATA``, ``guid_of`` ...): the engine compiles them with ``EXPRESSION_GLOBALS`` as
their globals. Everything is a constant or a pure function of the seed and a row's
position, so two models that must agree on a value (a user's address in ``sentry.user``,
``sentry.email``, ``sentry.useremail`` and ``sentry.organizationmember.user_email``)
compute the same thing independently (``SeedTables``).

Three kinds of constants:

* word lists (``FIRST_NAMES``, ``PROJECT_NAMES``, ``TIMEZONES`` ...), picked from at random;
* JSON text ready to paste into a row (``RULE_DATA``, ``MONITOR_CONFIGS``, the option
  values ...): encoded once here, never per row;
* code snippets (``STAMP``, ``QUOTED_STAMP``) for the table's most common expressions.
"""

from __future__ import annotations

import json
import random
from base64 import b64encode
from datetime import datetime, timedelta, timezone

#: What the table's expressions may name from here (the engine's globals for them).
EXPRESSION_GLOBALS = (
    "ADJECTIVES",
    "ALT_DOMAINS",
    "ANIMALS",
    "COUNTRIES",
    "DASHBOARD_FILTERS",
    "DASHBOARD_TITLES",
    "DOMAINS",
    "ENVIRONMENTS",
    "FIRST_NAMES",
    "INSTALL_OPTIONS",
    "KEY_DATA",
    "KEY_LABELS",
    "LANGUAGES",
    "LAST_NAMES",
    "MONITOR_CONFIGS",
    "ORG_OPTIONS",
    "OWNERSHIP_RAW",
    "OWNERSHIP_SCHEMA",
    "PLATFORMS",
    "PLATFORMS_JSON",
    "PROJECT_NAMES",
    "PROJECT_OPTION_KEYS",
    "RECENT_QUERIES",
    "ROLES",
    "RULE_DATA",
    "RULE_LABELS",
    "SAVED_SEARCHES",
    "SNUBA_QUERIES",
    "TEAM_NAMES",
    "TIMEZONES",
    "TRIGGER_LABELS",
    "USER_OPTION_KEYS",
    "WIDGET_QUERIES",
    "WIDGET_TITLES",
    "base64_of",
    "guid_of",
    "org_display_name",
    "project_option_values",
)

#: Timestamps per seed: every ``STAMP`` is one of these, picked by 12 random bits.
TS_POOL = 1 << 12
#: Name pairs per seed: user ``i`` is called ``names[i % NAME_POOL]``.
NAME_POOL = 4096

#: An expression: a random timestamp from the seed's pool (``2023-06-22T22:59:55.488Z``).
STAMP = "ts[bits(12)]"
#: The same, as a JSON string (with its quotes), for values that may also be ``null``.
QUOTED_STAMP = "quoted_ts[bits(12)]"

# -- word lists ------------------------------------------------------------------------------

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
#: Roles of an organization's first members; the rest are ``member``.
ROLES = ("owner", "manager", "manager", "admin", "admin", "admin", "admin", "admin")
SAVED_SEARCHES = (
    ("Unresolved errors", "is:unresolved level:error"),
    ("Assigned to my teams", "is:unresolved assigned_or_suggested:my_teams"),
)
RECENT_QUERIES = (
    "is:unresolved",
    "is:unresolved browser.name:Chrome",
    "level:error",
    "is:for_review",
    "release:latest",
    "environment:production",
)
USER_OPTION_KEYS = ("timezone", "language")
KEY_LABELS = ("Default", "Browser")
TRIGGER_LABELS = ("critical", "warning")
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


def json_string(value: str) -> str:
    """A JSON string literal (for values that may need escaping)."""
    return json.dumps(value)


def json_in_string(value: object) -> str:
    """JSON text of a value, as a JSON string literal (Sentry's option values)."""
    return json.dumps(json.dumps(value, separators=(",", ":")))


def compact_json(value: object) -> str:
    """A compact JSON literal."""
    return json.dumps(value, separators=(",", ":"))


# -- JSON text, encoded once --------------------------------------------------------------

#: The platform of a project as JSON (``null`` for none), picked by ``randrange``.
PLATFORMS_JSON = tuple(json_string(p) if p else "null" for p in PLATFORMS)
#: (key, value as JSON text in a JSON string) of every organization's options.
ORG_OPTIONS = tuple(
    (key, json_in_string(value))
    for key, value in (
        ("sentry:require_scrub_defaults", True),
        ("sentry:scrub_ip_address", True),
        ("sentry:sensitive_fields", ["password", "secret", "token"]),
        ("sentry:join_requests", False),
        ("sentry:events_member_admin", True),
    )
)
#: (key, value) of the installation options, both as JSON text (the value a JSON string).
INSTALL_OPTIONS = tuple(
    (json_string(key), json_in_string(value))
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
#: The ``data`` of the three issue alert rules every project has (a JSON string).
RULE_DATA = tuple(
    json_string(compact_json(data))
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
#: The ``data`` of a project's two DSN keys (a JSON object).
KEY_DATA = (
    compact_json({"dynamicSdkLoaderOptions": {"hasPerformance": True, "hasReplay": True}}),
    compact_json(
        {
            "dynamicSdkLoaderOptions": {
                "hasPerformance": False,
                "hasReplay": False,
                "hasDebug": False,
            }
        }
    ),
)
#: Cron monitor configurations (JSON objects).
MONITOR_CONFIGS = tuple(
    compact_json(c)
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
#: (fields, aggregates, columns, field_aliases, orderby) of each widget's query, as JSON.
WIDGET_QUERIES = tuple(
    (
        compact_json(fields),
        compact_json(aggregates),
        compact_json(columns),
        compact_json(aliases),
        json_string(orderby),
    )
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
#: A dashboard's ``filters`` when it has some (a JSON string).
DASHBOARD_FILTERS = json_string(compact_json({"release": ["latest"]}))
#: ``sentry.projectownership``: the ``raw`` rules (a JSON string) and their parsed ``schema``.
OWNERSHIP_RAW = json_string("path:src/* #backend\nurl:*/checkout/* #payments")
OWNERSHIP_SCHEMA = compact_json(
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


# -- helpers the table calls ---------------------------------------------------------------


def base64_of(number: int, length: int) -> str:
    """``number`` as ``length`` big-endian bytes, base64-encoded (a password hash's digest)."""
    return b64encode(number.to_bytes(length, "big")).decode()


def guid_of(hex_digits: str) -> str:
    """32 hex digits shaped as a version-4 UUID (``8-4-4-4-12``, ``4`` and ``a`` fixed)."""
    h = hex_digits
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def org_display_name(slug: str) -> str:
    """``bold-otter-12`` -> ``Bold Otter``: an organization's name without its number."""
    return " ".join(word.capitalize() for word in slug.split("-")[:2])


def project_option_values(
    relay_rev: int, relay_rev_changed: str, epoch: int, resolve_age: int, token: int, slug: str
) -> tuple[str, ...]:
    """A project's option values as JSON text, in ``PROJECT_OPTION_KEYS`` order.

    Args:
        relay_rev: 128 random bits (``sentry:relay-rev``).
        relay_rev_changed: a timestamp; written with its milliseconds zeroed.
        epoch: the option epoch (8 to 23).
        resolve_age: hours before issues auto-resolve (0 or 720).
        token: 128 random bits (``sentry:token``).
        slug: the organization's slug (in ``mail:subject_prefix``).
    """
    return (
        f'"\\"{relay_rev:032x}\\""',
        f'"\\"{relay_rev_changed[:-1]}000Z\\""',
        str(epoch),
        '"[\\"*\\"]"',
        str(resolve_age),
        '"true"',
        f'"\\"{token:032x}\\""',
        f'"\\"[{slug}]\\""',
    )


class SeedTables:
    """What every model of one export shares: lookups built from the seed alone.

    Attributes:
        seed: the export's seed.
        ts: ``TS_POOL`` sorted timestamps between 2020 and 2025, as Sentry writes them.
        quoted_ts: the same as JSON strings.
        names: ``NAME_POOL`` (first, last) name pairs.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        rng = random.Random(f"{seed}:tables")
        start = datetime(2020, 1, 1, tzinfo=timezone.utc)
        span = int(timedelta(days=5 * 365).total_seconds() * 1000)
        stamps = sorted(rng.randrange(span) for _ in range(TS_POOL))
        self.ts = tuple(
            (start + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{ms % 1000:03d}Z"
            for ms in stamps
        )
        self.quoted_ts = tuple(f'"{stamp}"' for stamp in self.ts)
        self.names = tuple(
            (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)) for _ in range(NAME_POOL)
        )

    def name_of(self, user: int) -> tuple[str, str]:
        """(first, last) name of the export's ``user``-th user (0-based)."""
        return self.names[user % NAME_POOL]

    def email_of(self, user: int) -> str:
        """The primary email address of the ``user``-th user (0-based)."""
        first, last = self.names[user % NAME_POOL]
        return f"{first}.{last}{user + 1}@{DOMAINS[user % len(DOMAINS)]}"

    def second_email_of(self, user: int) -> str:
        """The second address of a user who has one (every fifth user)."""
        first, _ = self.names[user % NAME_POOL]
        return f"{first}{user + 1}@{ALT_DOMAINS[user % len(ALT_DOMAINS)]}"

    def org_slug(self, org: int) -> str:
        """The slug of the ``org``-th organization (0-based): ``bold-otter-1``."""
        mixed = (org * 2654435761 + self.seed) & 0xFFFFFFFF
        adjective = ADJECTIVES[mixed % len(ADJECTIVES)]
        animal = ANIMALS[(mixed >> 8) % len(ANIMALS)]
        return f"{adjective}-{animal}-{org + 1}"
