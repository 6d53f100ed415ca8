"""Rules of the Organization-scope models (spec 6.5, 6.6 and 8).

Organizations get normalised slugs, unique among organizations and slug reservations,
with a PRIMARY reservation and an organization mapping written in the same transaction
(the single-database result of Sentry's reservation dance). Members get member mappings
and keep their row when their inviter is not imported. Keys, tokens and guids that
collide with rows already in the target are regenerated.
"""

from __future__ import annotations

import base64
import json
import secrets
import time

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
    record_side_effects,
    try_unique,
)
from relocate.logic.rules.common import first_free, sha256_hex, slugify
from relocate.logic.rules.tokens import fresh_key, fresh_token, fresh_uuid

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
ORG_SLUG_MAX_LENGTH = 50
PRIMARY_RESERVATION = 0


def normalize_org_slug(slug: str | None) -> str:
    """Sentry's slug normalisation; a reserved or empty slug becomes 12 random hex chars."""
    text = (slug or "").lower().replace("_", "-").strip("-")
    text = slugify(text)
    if not text or text in RESERVED_ORG_SLUGS:
        return secrets.token_hex(6)
    return text


class OrganizationHandler(Handler):
    """``sentry.organization``: always Inserted, under a slug nobody else has."""

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        item.values["slug"] = normalize_org_slug(item.values.get("slug"))

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
                "SELECT lower(slug) FROM sentry_organization WHERE lower(slug) = ANY(%s) "
                "UNION SELECT lower(slug) FROM sentry_organizationslugreservation "
                "WHERE lower(slug) = ANY(%s)",
                (keys, keys),
            )
        }
        fast: list[Item] = []
        slow: list[Item] = []
        for item, key in zip(items, keys, strict=True):
            (slow if key in taken else fast).append(item)
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
                    break
            else:
                raise RowFailed("IntegrityError", f"organization slug {base!r} kept colliding")

    @staticmethod
    def _insert_many(ctx: WriteContext, items: list[Item]) -> None:
        """Organizations whose slugs are free, with their reservations and mappings."""
        for item in items:
            item.slug = item.values["slug"]
        copy_rows(ctx, items)
        region = ctx.settings.region_name
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
        insert_side_effects(
            ctx,
            "INSERT INTO sentry_organizationmapping (organization_id, slug, name, "
            "date_created, idempotency_key, region_name, status) "
            "SELECT o, s, n, COALESCE(d::timestamptz, now()), '', %s, st "
            "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[]) "
            "AS t(o, s, n, d, st)",
            (
                region,
                [i.new_pk for i in items],
                [i.slug for i in items],
                [(i.values.get("name") or "")[:64] for i in items],
                [i.values.get("date_added") for i in items],
                [i.values.get("status", 0) for i in items],
            ),
            "sentry_organizationmapping",
        )

    @staticmethod
    def _insert(ctx: WriteContext, item: Item, slug: str) -> None:
        """The organization with its PRIMARY slug reservation and its mapping."""
        item.values["slug"] = slug
        item.slug = slug
        insert_row(ctx, item)
        values = item.values
        reservation = insert_side_effect(
            ctx,
            "sentry_organizationslugreservation",
            {
                "slug": slug,
                "organization_id": item.new_pk,
                "user_id": -1,
                "region_name": ctx.settings.region_name,
                "reservation_type": PRIMARY_RESERVATION,
            },
        )
        if reservation is None:
            raise Collision(f"slug {slug!r} was reserved meanwhile")
        insert_side_effect(
            ctx,
            "sentry_organizationmapping",
            {
                "organization_id": item.new_pk,
                "slug": slug,
                "name": (values.get("name") or "")[:64],
                "date_created": values.get("date_added") or ctx.now,
                "idempotency_key": "",
                "region_name": ctx.settings.region_name,
                "status": values.get("status", 0),
            },
        )


class OrganizationMemberHandler(Handler):
    """``sentry.organizationmember``: inviter nulled when absent; member mappings."""

    null_when_missing = frozenset({"inviter_id"})

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        token = item.values.get("token")
        if token and not ctx.is_free("token", token):
            item.values["token"] = secrets.token_hex(32)
            ctx.reserve("token", item.values["token"])

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
            [list(column) for column in zip(*rows)],
        ).fetchall()
        record_side_effects(ctx, "sentry_organizationmembermapping", [r[0] for r in ids])


class ProjectKeyHandler(Handler):
    """``sentry.projectkey``: empty or colliding public/secret keys are regenerated.

    Sentry merges imported keys into the default key its ORM creates with a project
    (so a second key of one project overwrites the first); relocate creates no default
    keys, so every exported key stays its own row.
    """

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        for column in ("public_key", "secret_key"):
            value = item.values.get(column)
            if not value or not ctx.is_free(column, value):
                value = fresh_key()
                ctx.reserve(column, value)
            item.values[column] = value


class UniqueValueHandler(Handler):
    """A model whose one column must be globally unique: a collision gets a new value."""

    def __init__(self, column: str, fresh: object) -> None:
        self.column = column
        self.fresh = fresh

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        value = item.values.get(self.column)
        if value is None or ctx.is_free(self.column, value):
            return
        value = self.fresh(value)
        item.values[self.column] = value
        if value is not None:
            ctx.reserve(self.column, value)


def org_auth_token(slug: str, url_prefix: str, region_url: str = "") -> str:
    """A new org auth token for the organization's final slug (spec 6.5)."""
    payload = {
        "iat": time.time(),
        "url": url_prefix,
        "region_url": region_url or url_prefix,
        "org": slug,
    }
    encoded = base64.b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    secret = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return f"sntrys_{encoded}_{secret}"


class OrgAuthTokenHandler(Handler):
    """``sentry.orgauthtoken``: an empty or colliding hash gets a new token for the slug."""

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        hashed = item.values.get("token_hashed")
        if hashed and ctx.is_free("token_hashed", hashed):
            return
        org = ctx.target("sentry.organization", item.source.get("organization_id"))
        slug = org.slug if org is not None else None
        if not slug or not ctx.settings.url_prefix:
            raise RowDropped(
                "a new token is needed but the organization's slug or the instance URL is unknown"
            )
        token = org_auth_token(slug, ctx.settings.url_prefix)
        item.values["token_hashed"] = sha256_hex(token)
        item.values["token_last_characters"] = token[-4:]
        ctx.reserve("token_hashed", item.values["token_hashed"])


class UserIpHandler(Handler):
    """``sentry.userip``: get-or-create per (user, ip), country/region from GeoIP."""

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        from relocate.logic.rules.users import _user_was_merged

        if _user_was_merged(ctx, item):
            raise RowDropped("its user was merged into an existing user (--merge-users)")
        geo = ctx.scratch.get("geoip")
        if geo is None:
            from relocate.logic.geoip import GeoIp

            geo = ctx.scratch["geoip"] = GeoIp(ctx.settings.geoip_db)
        country, region = geo.lookup(item.values.get("ip_address"))
        item.values["country_code"] = country
        item.values["region_code"] = region
        if not ctx.settings.is_global:
            item.values["first_seen"] = ctx.now
            item.values["last_seen"] = ctx.now

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        for item in items:
            ctx.current = item
            existing = find_existing(
                ctx, {"user_id": item.values["user_id"], "ip_address": item.values["ip_address"]}
            )
            if existing is None:
                insert_row(ctx, item)
            else:
                item.new_pk = existing


def fresh_subscription_id(_: str) -> None:
    """A colliding Snuba subscription id is cleared: the subscription is re-created."""
    return None


def org_handlers() -> dict[str, Handler]:
    return {
        "sentry.organization": OrganizationHandler(),
        "sentry.organizationmember": OrganizationMemberHandler(),
        "sentry.projectkey": ProjectKeyHandler(),
        "sentry.orgauthtoken": OrgAuthTokenHandler(),
        "sentry.monitor": UniqueValueHandler("guid", lambda _: fresh_uuid()),
        "sentry.querysubscription": UniqueValueHandler("subscription_id", fresh_subscription_id),
        "sentry.userip": UserIpHandler(),
        "sentry.servicehook": UniqueValueHandler("guid", lambda _: fresh_key()),
        "sentry.sentryappcomponent": UniqueValueHandler("uuid", lambda _: fresh_uuid()),
        "sentry.apikey": UniqueValueHandler("key", lambda _: fresh_key()),
        "sentry.apiapplication": UniqueValueHandler("client_id", lambda v: fresh_token(None)),
    }
