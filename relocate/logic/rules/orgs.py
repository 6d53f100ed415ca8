"""Rules of the Organization-scope models (spec 6.5, 6.6 and 8).

Organizations get normalised slugs of at most 30 characters, unique among organizations
and slug reservations, with a PRIMARY reservation (and its replica) and an organization
mapping carrying the organization's flags, written in the same transaction (the
single-database result of Sentry's reservation dance), under the target's region.
Members get member mappings and keep their row when their inviter is not imported. Keys,
tokens and guids that collide with rows already in the target are regenerated.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import psycopg
from psycopg import sql

from relocate.db.handler import (
    Collision,
    Handler,
    Item,
    RowDropped,
    RowFailed,
    WriteContext,
    copy_rows,
    find_existing,
    insert_row,
    insert_side_effect,
    insert_side_effects,
    note_change,
    record_side_effects,
    try_unique,
)
from relocate.db.sql_literals import array_literal
from relocate.logic.rules.common import first_free, sha256_hex, slugify
from relocate.logic.rules.replicas import table_columns, write_replicas
from relocate.logic.rules.tokens import fresh_key, fresh_token, fresh_uuid
from relocate.logic.settings import MONOLITH_REGION

#: Sentry's reserved organization slugs (spec section 8; keep it data, not logic).
RESERVED_ORG_SLUGS = frozenset(
    [
        "404",
        "500",
        "_admin",
        "_experiment",
        "_static",
        "about",
        "accept",
        "access",
        "account",
        "accountspayable",
        "acl",
        "admin",
        "answers",
        "ap",
        "api",
        "app",
        "at",
        "au1",
        "auth",
        "authentication",
        "avatar",
        "billing",
        "blog",
        "branding",
        "careers",
        "client",
        "clients",
        "community",
        "contact",
        "corp",
        "customers",
        "de",
        "debug",
        "devinfra",
        "docs",
        "enterprise",
        "eu",
        "events",
        "expenses",
        "ext",
        "extension",
        "extensions",
        "features",
        "finance",
        "for",
        "from",
        "get-cli",
        "github-deployment-gate",
        "guide",
        "help",
        "ingest",
        "ingest-beta",
        "integration-platform",
        "integrations",
        "invoice",
        "invoices",
        "ja",
        "jobs",
        "legal",
        "login",
        "logout",
        "lp",
        "mail",
        "manage",
        "my",
        "onboarding",
        "organization-avatar",
        "organizations",
        "out",
        "payment",
        "payments",
        "platforms",
        "plugins",
        "policy",
        "pricing",
        "privacy",
        "project-avatar",
        "projects",
        "receipt",
        "receipts",
        "referrals",
        "register",
        "remote",
        "resources",
        "sa1",
        "sales",
        "security",
        "sentry-apps",
        "settings",
        "signup",
        "sponsorship",
        "ssh",
        "sso",
        "staff",
        "subscribe",
        "support",
        "syntax",
        "syntaxfm",
        "team-avatar",
        "teams",
        "terms",
        "thanks",
        "themonitor",
        "trust",
        "us",
        "vs",
        "welcome",
    ]
)
#: ``slugify_instance``'s default ``max_length`` (src/sentry/db/models/utils.py), which
#: Organization.save and ``_generate_org_slug`` do not override.
ORG_SLUG_MAX_LENGTH = 30
PRIMARY_RESERVATION = 0

#: Organization.flags bits in order (src/sentry/models/organization.py, ``class flags``)
#: with the mapping column ``update_organization_mapping_from_instance`` copies each into
#: (``require_2fa`` is the column of the mapping's ``requires_2fa``). The last three exist
#: in newer Sentry only; each is written when the target's mapping table has it.
ORG_FLAG_COLUMNS = (
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
#: Organization.flags' ``bitfield_default``: allow_joinleave only.
ORG_FLAGS_DEFAULT = 1

#: The mapping's columns relocate writes, with the type of their parameter arrays.
_MAPPING_TYPES = {
    "organization_id": "bigint",
    "slug": "text",
    "name": "text",
    "date_created": "timestamptz",
    "idempotency_key": "text",
    "region_name": "text",
    "status": "bigint",
    **{column: "boolean" for column in ORG_FLAG_COLUMNS},
}


def normalize_org_slug(slug: str | None) -> str:
    """Sentry's ``slugify_instance`` value: ``slugify(label)[:30].strip("-")``; a reserved
    or empty slug becomes 12 random hex characters."""
    text = (slug or "").lower().replace("_", "-").strip("-")
    text = slugify(text)[:ORG_SLUG_MAX_LENGTH].strip("-")
    if not text or text in RESERVED_ORG_SLUGS:
        return secrets.token_hex(6)
    return text


def mapping_flags(flags: Any) -> dict[str, bool]:
    """The mapping's booleans from an organization's flags bitfield (None: its default)."""
    bits = ORG_FLAGS_DEFAULT if flags is None else int(flags)
    return {column: bool(bits >> bit & 1) for bit, column in enumerate(ORG_FLAG_COLUMNS)}


def target_region(cur: psycopg.Cursor) -> str | None:
    """The region the target's newest organization mapping (else slug reservation) names.

    A monolith records one region in both (``get_local_region().name``); None when the
    target has neither, i.e. nothing says which region it is.
    """
    row = cur.execute(
        "SELECT region_name FROM ("
        "(SELECT region_name, 0 AS k, id FROM sentry_organizationmapping ORDER BY id DESC "
        "LIMIT 1) UNION ALL "
        "(SELECT region_name, 1, id FROM sentry_organizationslugreservation ORDER BY id DESC "
        "LIMIT 1)) AS t ORDER BY k LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def region_of(ctx: WriteContext) -> str:
    """The region of this import's mappings and reservations (``--region-name``, else the
    target's, else the monolith's); looked up once per batch."""
    if ctx.settings.region_name:
        return ctx.settings.region_name
    if "region" not in ctx.scratch:
        ctx.scratch["region"] = target_region(ctx.cur) or MONOLITH_REGION
    return ctx.scratch["region"]


def target_url_prefix(cur: psycopg.Cursor) -> str:
    """``options.get("system.url-prefix")`` as a monolith reads it from ``sentry_option``.

    The option has no registered default, which Sentry's options manager turns into "":
    an unset option (no row, JSON null, a value that is not a JSON string) reads as "".
    """
    row = cur.execute(
        "SELECT value FROM sentry_option WHERE key = 'system.url-prefix' ORDER BY id LIMIT 1"
    ).fetchone()
    if row is None or row[0] is None:
        return ""
    try:
        value = json.loads(row[0])
    except (TypeError, ValueError):
        return ""  # not JSON (an old pickled value): relocate does not unpickle
    return value if isinstance(value, str) else ""


def insert_mappings(ctx: WriteContext, items: list[Item]) -> list[int]:
    """The organization mappings of ``items`` (``item.slug`` set), with every column of
    ``update_organization_mapping_from_instance`` the target's mapping table has."""
    present = table_columns(ctx, "sentry_organizationmapping")
    region = region_of(ctx)
    rows = []
    for item in items:
        values = item.values
        date = values.get("date_added")
        rows.append(
            {
                "organization_id": item.new_pk,
                "slug": item.slug,
                "name": (values.get("name") or "")[:64],
                "date_created": str(date) if date is not None else ctx.now.isoformat(),
                "idempotency_key": "",
                "region_name": region,
                "status": values.get("status", 0),
                **mapping_flags(values.get("flags")),
            }
        )
    columns = [c for c in _MAPPING_TYPES if c in present]
    statement = sql.SQL("INSERT INTO sentry_organizationmapping ({}) SELECT * FROM unnest({})")
    statement = statement.format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(_MAPPING_TYPES[c])) for c in columns),
    )
    return insert_side_effects(
        ctx,
        statement.as_string(ctx.cur),
        [[row[c] for row in rows] for c in columns],
        "sentry_organizationmapping",
    )


class OrganizationHandler(Handler):
    """``sentry.organization``: always Inserted, under a slug nobody else has."""

    resolves_uniques = (frozenset({"slug"}),)

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        exported = item.values.get("slug")
        item.values["slug"] = normalize_org_slug(exported)
        if item.values["slug"] != exported:
            note_change(
                item,
                "slug",
                "renamed",
                "normalised as Sentry's slugify does",
                **{"from": exported, "to": item.values["slug"]},
            )

    def _taken(self, ctx: WriteContext, slug: str) -> bool:
        if slug in RESERVED_ORG_SLUGS:
            return True
        for table in ("sentry_organization", "sentry_organizationslugreservation"):
            if (
                find_existing(ctx, {"slug": slug}, table=table, ci_columns=frozenset({"slug"}))
                is not None
            ):
                return True
        return False

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        # One query finds the batch's slugs already taken (case-insensitively, in either
        # table); organizations whose slug is free, and first of its slug in the batch, go
        # in set-based statements, the others one by one after them, so the first row in
        # file order keeps the slug, as in Sentry. (Per row, each check was a scan of both
        # tables: quadratic in the number of organizations.)
        keys = [str(item.values["slug"]).lower() for item in items]
        taken = set(RESERVED_ORG_SLUGS) | {
            r[0]
            for r in ctx.cur.execute(
                "SELECT lower(slug) FROM sentry_organization "
                "WHERE lower(slug) IN (SELECT unnest(%s::text[])) "
                "UNION SELECT lower(slug) FROM sentry_organizationslugreservation "
                "WHERE lower(slug) IN (SELECT unnest(%s::text[]))",
                (keys, keys),
            )
        }
        fast: list[Item] = []
        slow: list[Item] = []
        for item, key in zip(items, keys, strict=True):
            # An all-digit slug is never kept as it is (unique_db_instance), free or not.
            (slow if key in taken or key.isdecimal() else fast).append(item)
            taken.add(key)
        if fast and not try_unique(ctx, lambda: self._insert_many(ctx, fast)):
            # A concurrent batch took one of the slugs: do these one by one.
            slow = sorted(fast + slow, key=lambda i: i.ordinal)
        self._write_each(ctx, slow)

    def _write_each(self, ctx: WriteContext, items: list[Item]) -> None:
        for item in items:
            ctx.current = item
            base = item.values["slug"]
            for _ in range(3):
                slug = first_free(base, ORG_SLUG_MAX_LENGTH, lambda s: self._taken(ctx, s))
                if slug is None:
                    raise RowFailed(
                        "IntegrityError", f"no free organization slug derived from {base!r}"
                    )
                if try_unique(ctx, lambda i=item, s=slug: self._insert(ctx, i, s)):
                    if slug != base:
                        note_change(
                            item,
                            "slug",
                            "renamed",
                            _why_renamed(base),
                            **{"from": item.source.get("slug"), "to": slug},
                            collides_with=_slug_owner(ctx, base),
                        )
                    break
            else:
                raise RowFailed("IntegrityError", f"organization slug {base!r} kept colliding")

    @staticmethod
    def _insert_many(ctx: WriteContext, items: list[Item]) -> None:
        """Organizations whose slugs are free, with their reservations and mappings."""
        for item in items:
            item.slug = item.values["slug"]
        copy_rows(ctx, items)
        region = region_of(ctx)
        reserved = insert_side_effects(
            ctx,
            "INSERT INTO sentry_organizationslugreservation (slug, organization_id, user_id, "
            "region_name, reservation_type) SELECT s, o, -1, %s, %s "
            "FROM unnest(%s::text[], %s::bigint[]) AS t(s, o)",
            (region, PRIMARY_RESERVATION, [i.slug for i in items], [i.new_pk for i in items]),
            "sentry_organizationslugreservation",
        )
        if len(reserved) < len(items):
            raise Collision("a slug was reserved meanwhile")
        write_replicas(ctx, "sentry_organizationslugreservation", reserved)
        insert_mappings(ctx, items)

    @staticmethod
    def _insert(ctx: WriteContext, item: Item, slug: str) -> None:
        """The organization with its PRIMARY slug reservation and its mapping."""
        item.values["slug"] = slug
        item.slug = slug
        insert_row(ctx, item)
        reservation = insert_side_effect(
            ctx,
            "sentry_organizationslugreservation",
            {
                "slug": slug,
                "organization_id": item.new_pk,
                "user_id": -1,
                "region_name": region_of(ctx),
                "reservation_type": PRIMARY_RESERVATION,
            },
        )
        if reservation is None:
            raise Collision(f"slug {slug!r} was reserved meanwhile")
        write_replicas(ctx, "sentry_organizationslugreservation", [reservation])
        insert_mappings(ctx, [item])


def _why_renamed(slug: str) -> str:
    if slug in RESERVED_ORG_SLUGS:
        return "the slug is reserved by Sentry"
    if slug.isdecimal():
        return "an all-digit slug is always suffixed"
    return "the slug is taken"


def _slug_owner(ctx: WriteContext, slug: str) -> dict[str, Any] | None:
    """The organization (else slug reservation) that holds ``slug``, case-insensitively."""
    for table in ("sentry_organization", "sentry_organizationslugreservation"):
        column = "id" if table == "sentry_organization" else "organization_id"
        row = ctx.cur.execute(
            sql.SQL("SELECT {}, slug FROM {} WHERE lower(slug) = lower(%s) LIMIT 1").format(
                sql.Identifier(column), sql.Identifier(table)
            ),
            (slug,),
        ).fetchone()
        if row is not None:
            return {"organization_id": row[0], "slug": row[1], "table": table}
    return None


class OrganizationMemberHandler(Handler):
    """``sentry.organizationmember``: inviter nulled when absent; member mappings."""

    null_when_missing = frozenset({"inviter_id"})
    resolves_uniques = (frozenset({"token"}),)

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        token = item.values.get("token")
        if token and not ctx.is_free("token", token):
            item.values["token"] = secrets.token_hex(32)
            ctx.reserve("token", item.values["token"])
            note_change(item, "token", "regenerated", "the token is taken")

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        copy_rows(ctx, items)
        rows = [
            (
                i.values.get("organization_id"),
                i.new_pk,
                i.values.get("role") or "member",
                i.values.get("user_id"),
                i.values.get("email"),
                i.values.get("inviter_id"),
                i.values.get("invite_status", 0),
                i.values.get("date_added"),
            )
            for i in items
        ]
        ids = ctx.cur.execute(
            "INSERT INTO sentry_organizationmembermapping (organization_id, "
            "organizationmember_id, role, user_id, email, inviter_id, invite_status, "
            "date_added) SELECT o, m, r, u, e, i, s, COALESCE(d::timestamptz, now()) "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::bigint[], %s::text[], "
            "%s::bigint[], %s::smallint[], %s::text[]) AS t(o, m, r, u, e, i, s, d) "
            "ON CONFLICT DO NOTHING RETURNING id",
            [array_literal(column) for column in zip(*rows)],
        ).fetchall()
        record_side_effects(ctx, "sentry_organizationmembermapping", [r[0] for r in ids])


class UniqueValueHandler(Handler):
    """A model whose one column must be globally unique: a collision gets a new value."""

    def __init__(self, column: str, fresh: object) -> None:
        self.column = column
        self.fresh = fresh
        self.resolves_uniques = (frozenset({column}),)

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        value = item.values.get(self.column)
        if value is None or ctx.is_free(self.column, value):
            return
        value = self.fresh(value)
        item.values[self.column] = value
        if value is not None:
            ctx.reserve(self.column, value)
        note_change(item, self.column, "regenerated", f"the {self.column} is taken")


def org_auth_token(slug: str, url_prefix: str, region_url: str | None = None) -> str:
    """A new org auth token for the organization's final slug: Sentry's ``generate_token``
    (src/sentry/utils/security/orgauthtoken_token.py).

    The payload is compact JSON in Sentry's key order, base64 with its padding kept; the
    secret is base64 of 32 random bytes with the padding stripped. A monolith's
    ``region_url`` is its url-prefix (``generate_region_url`` without a region template).
    """
    payload = {
        "iat": time.time(),
        "url": url_prefix,
        "region_url": url_prefix if region_url is None else region_url,
        "org": slug,
    }
    compact = json.dumps(payload, separators=(",", ":")).encode()
    encoded = base64.b64encode(compact).decode()
    secret = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return f"sntrys_{encoded}_{secret}"


class OrgAuthTokenHandler(Handler):
    """``sentry.orgauthtoken``: an empty or colliding hash gets a new token for the slug."""

    resolves_uniques = (frozenset({"token_hashed"}),)

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        hashed = item.values.get("token_hashed")
        if hashed and ctx.is_free("token_hashed", hashed):
            return
        org = ctx.target("sentry.organization", item.source.get("organization_id"))
        slug = org.slug if org is not None else None
        if not slug:
            raise RowDropped("a new token is needed but the organization's slug is unknown")
        url = ctx.settings.url_prefix
        if url is None:
            if "url_prefix" not in ctx.scratch:
                ctx.scratch["url_prefix"] = target_url_prefix(ctx.cur)
            url = ctx.scratch["url_prefix"]
        token = org_auth_token(slug, url)
        note_change(
            item,
            "token_hashed",
            "regenerated",
            "the token's hash is taken" if hashed else "the token has no hash",
        )
        item.values["token_hashed"] = sha256_hex(token)
        item.values["token_last_characters"] = token[-4:]
        ctx.reserve("token_hashed", item.values["token_hashed"])


def org_handlers() -> dict[str, Handler]:
    return {
        "sentry.organization": OrganizationHandler(),
        "sentry.organizationmember": OrganizationMemberHandler(),
        "sentry.orgauthtoken": OrgAuthTokenHandler(),
        "sentry.servicehook": UniqueValueHandler("guid", lambda _: fresh_key()),
        "sentry.sentryappcomponent": UniqueValueHandler("uuid", lambda _: fresh_uuid()),
        "sentry.apikey": UniqueValueHandler("key", lambda _: fresh_key()),
        "sentry.apiapplication": UniqueValueHandler("client_id", lambda v: fresh_token(None)),
    }
