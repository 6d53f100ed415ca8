"""Rules of the User-scope models: users, emails, user emails, options, permissions, IPs.

Spec sections 6.1-6.3 and 7: sanitisation by scope, username collisions (rename with
Sentry's suffix scheme, or merge), the side-effect rows Sentry's ORM creates (primary
UserEmail and Email, LostPasswordHash), and the rows dropped for merged users.
"""

from __future__ import annotations

import json
import zoneinfo
from functools import lru_cache

from relocate.db.handler import (
    EXISTING,
    Handler,
    Item,
    RowDropped,
    RowFailed,
    WriteContext,
    copy_rows,
    find_existing,
    insert_row,
    insert_side_effects,
    try_unique,
    update_rows,
)
from relocate.logic.convert import Converted, RowInvalid
from relocate.logic.rules.common import first_free, secure_token, unusable_password
from relocate.logic.settings import ImportSettings

MAX_USERNAME_LENGTH = 128


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _user_was_merged(ctx: WriteContext, item: Item, column: str = "user_id") -> bool:
    """Whether the row's user is an existing user the import merged into."""
    return item.values.get(column) in ctx.existing_targets("sentry.user")


class UserHandler(Handler):
    """``sentry.user`` (table auth_user)."""

    resolves_uniques = (frozenset({"username"}),)  # renamed, or merged

    def validate(self, row: Converted, settings: ImportSettings) -> None:
        values = row.values
        username = values.get("username")
        if not username:
            # Sentry's user serializer falls back to the email for an empty username.
            if values.get("email"):
                values["username"] = values["email"][:MAX_USERNAME_LENGTH]
            else:
                raise RowInvalid(
                    "Django validation error encountered: {'username': "
                    "['This field may not be blank.']}"
                )

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        values = item.values
        scope = ctx.settings.scope
        if scope in ("users", "organizations"):
            values["is_staff"] = False
            values["is_superuser"] = False
            values["is_managed"] = False
        if scope != "global" or values.get("is_unclaimed"):
            values["is_unclaimed"] = True
            values["password"] = unusable_password()
            values["last_password_change"] = ctx.now
            values["is_password_expired"] = False

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        # One query finds every username of the batch that exists already; rows whose name
        # is free (and first of its name in the batch) go in one COPY, the others one by
        # one after it, so the first row in file order keeps the name, as in Sentry.
        names = [item.values["username"] for item in items]
        taken = {
            r[0]
            for r in ctx.cur.execute(
                "SELECT username FROM auth_user WHERE username = ANY(%s)", (names,)
            )
        }
        fast: list[Item] = []
        slow: list[Item] = []
        for item in items:
            name = item.values["username"]
            (slow if name in taken else fast).append(item)
            taken.add(name)
        if fast and not try_unique(ctx, lambda: copy_rows(ctx, fast)):
            # A concurrent batch took one of the names: do these one by one.
            slow = sorted(fast + slow, key=lambda i: i.ordinal)
        for item in slow:
            self._write_one(ctx, item)
        self._side_effects(ctx, [i for i in items if i.kind != EXISTING])

    def _write_one(self, ctx: WriteContext, item: Item) -> None:
        original = item.values["username"]
        ctx.current = item
        for _ in range(3):
            existing = find_existing(ctx, {"username": original})
            if existing is not None and ctx.settings.merge_users:
                item.new_pk, item.kind = existing, EXISTING
                return
            if existing is not None:
                # Sentry matches the collision exactly and checks candidates
                # case-insensitively.
                free = first_free(
                    original,
                    MAX_USERNAME_LENGTH,
                    lambda c: (
                        find_existing(ctx, {"username": c}, ci_columns=frozenset({"username"}))
                        is not None
                    ),
                )
                if free is None:
                    raise RowFailed("IntegrityError", f"no free username derived from {original!r}")
                item.values["username"] = free
            if try_unique(ctx, lambda: insert_row(ctx, item)):
                return
        raise RowFailed("IntegrityError", f"username {original!r} kept colliding")

    def _side_effects(self, ctx: WriteContext, items: list[Item]) -> None:
        """The rows Sentry's ORM creates with new users, one statement per table."""
        if not items:
            return
        user_ids = [i.new_pk for i in items]
        if not ctx.settings.is_global:
            insert_side_effects(
                ctx,
                "INSERT INTO sentry_lostpasswordhash (user_id, hash, date_added) "
                "SELECT u, h, now() FROM unnest(%s::bigint[], %s::text[]) AS t(u, h)",
                (user_ids, [secure_token(32) for _ in items]),
                "sentry_lostpasswordhash",
            )
        with_email = [i for i in items if i.values.get("email")]
        if with_email:
            emails = [i.values["email"] for i in with_email]
            insert_side_effects(
                ctx,
                "INSERT INTO sentry_useremail "
                "(user_id, email, validation_hash, date_hash_added, is_verified) "
                "SELECT u, e, h, now(), false FROM unnest(%s::bigint[], %s::text[], "
                "%s::text[]) AS t(u, e, h)",
                ([i.new_pk for i in with_email], emails, [secure_token(32) for _ in emails]),
                "sentry_useremail",
            )
            # The unique index on lower(email) makes an existing address a no-op.
            insert_side_effects(
                ctx,
                "INSERT INTO sentry_email (email, date_added) "
                "SELECT e, now() FROM unnest(%s::text[]) AS t(e)",
                (emails,),
                "sentry_email",
            )


class EmailHandler(Handler):
    """``sentry.email``: get-or-create by address (case-insensitive)."""

    resolves_uniques = (frozenset({"email"}),)

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        known = _email_ids(ctx, [i.values.get("email") or "" for i in items])
        new: list[Item] = []
        for item in items:
            key = (item.values.get("email") or "").lower()
            if key in known:
                item.new_pk, item.kind = known[key], EXISTING
            else:
                known[key] = item.new_pk
                new.append(item)
        if not new:
            return
        inserted = {
            r[0]
            for r in ctx.cur.execute(
                "INSERT INTO sentry_email (id, email, date_added) "
                "SELECT i, e, COALESCE(d::timestamptz, now()) "
                "FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS t(i, e, d) "
                "ON CONFLICT DO NOTHING RETURNING id",
                (
                    [i.new_pk for i in new],
                    [i.values.get("email") or "" for i in new],
                    [_text(i.values.get("date_added")) for i in new],
                ),
            )
        }
        lost = [i for i in new if i.new_pk not in inserted]
        if lost:  # a concurrent batch created these addresses first
            now_known = _email_ids(ctx, [i.values.get("email") or "" for i in lost])
            for item in lost:
                item.new_pk = now_known[(item.values.get("email") or "").lower()]
                item.kind = EXISTING


def _email_ids(ctx: WriteContext, emails: list[str]) -> dict[str, int]:
    rows = ctx.cur.execute(
        "SELECT lower(email), min(id) FROM sentry_email WHERE lower(email) = ANY(%s) "
        "GROUP BY lower(email)",
        ([e.lower() for e in emails],),
    )
    return dict(rows.fetchall())


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class UserEmailHandler(Handler):
    """``sentry.useremail``: verification reset outside Global; merges into the primary."""

    resolves_uniques = (frozenset({"user_id", "email"}),)

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        if _user_was_merged(ctx, item):
            raise RowDropped("its user was merged into an existing user (--merge-users)")
        if not ctx.settings.is_global:
            item.values["is_verified"] = False
            item.values["validation_hash"] = secure_token(32)
            item.values["date_hash_added"] = ctx.now

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        pairs = [(i.values.get("user_id"), i.values.get("email")) for i in items]
        existing = dict(
            ((u, e), row_id)
            for row_id, u, e in ctx.cur.execute(
                "SELECT x.id, x.user_id, x.email FROM sentry_useremail x JOIN "
                "unnest(%s::bigint[], %s::text[]) AS t(u, e) ON x.user_id = t.u "
                "AND x.email = t.e",
                ([p[0] for p in pairs], [p[1] for p in pairs]),
            )
        )
        new: list[Item] = []
        onto: list[Item] = []
        for item, pair in zip(items, pairs):
            if pair in existing:
                item.new_pk = existing[pair]
                onto.append(item)
            else:
                existing[pair] = item.new_pk
                new.append(item)
        copy_rows(ctx, new)
        # The primary UserEmail created with the user takes the imported values.
        update_rows(
            ctx,
            [
                (i.new_pk, {k: v for k, v in i.values.items() if k not in ("user_id", "email")})
                for i in onto
            ],
        )


class UserOwnedHandler(Handler):
    """Rows dropped when their user was merged: permissions and options (spec 5.2)."""

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        if _user_was_merged(ctx, item):
            raise RowDropped("its user was merged into an existing user (--merge-users)")


class UserOptionHandler(UserOwnedHandler):
    """``sentry.useroption``: Sentry validates the timezone option."""

    def validate(self, row: Converted, settings: ImportSettings) -> None:
        if row.values.get("key") != "timezone":
            return
        raw = row.values.get("value")
        try:
            value = json.loads(raw) if isinstance(raw, str) else raw
        except (ValueError, RecursionError):  # not JSON, or nested too deep to decode
            value = raw
        if not isinstance(value, str) or value not in _timezones():
            raise RowInvalid(
                "Django validation error encountered: {'timezone': "
                f"['{value!s:.100} is not a valid timezone']}}"
            )
