"""Rules of the User-scope models: users, emails, user emails, options, permissions, IPs.

Spec sections 6.1-6.3 and 7: sanitisation by scope, username collisions (rename with
Sentry's suffix scheme, or merge), the side-effect rows Sentry's ORM creates (primary
UserEmail and Email, LostPasswordHash), and the rows dropped for merged users.
"""

from __future__ import annotations

import json
import zoneinfo
from functools import lru_cache

from relocate.convert import Converted, RowInvalid
from relocate.io.sink import (
    EXISTING,
    Handler,
    Item,
    RowDropped,
    RowFailed,
    WriteContext,
    find_existing,
    insert_row,
    insert_side_effect,
    update_row,
)
from relocate.rules.common import first_free, secure_token, unusable_password
from relocate.settings import ImportSettings

MAX_USERNAME_LENGTH = 128


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _user_was_merged(ctx: WriteContext, item: Item, column: str = "user_id") -> bool:
    """Whether the row's user is an existing user the import merged into."""
    return item.values.get(column) in ctx.existing_targets("sentry.user")


class UserHandler(Handler):
    """``sentry.user`` (table auth_user)."""

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
        for item in items:
            self._write_one(ctx, item)

    def _write_one(self, ctx: WriteContext, item: Item) -> None:
        username = item.values["username"]
        cur = ctx.cur
        ctx.current = item
        for _ in range(3):
            existing = find_existing(ctx, {"username": username})
            if existing is not None and ctx.settings.merge_users:
                item.new_pk, item.kind = existing, EXISTING
                return
            if existing is not None:
                # Sentry checks candidates case-insensitively, the collision exactly.
                free = first_free(
                    username,
                    MAX_USERNAME_LENGTH,
                    lambda c: (
                        find_existing(ctx, {"username": c}, ci_columns=frozenset({"username"}))
                        is not None
                    ),
                )
                if free is None:
                    raise RowFailed("IntegrityError", f"no free username derived from {username!r}")
                item.values["username"] = free
            # ON CONFLICT: a concurrent batch may take the name between check and insert.
            cur.execute("SAVEPOINT user_insert")
            try:
                insert_row(ctx, item)
            except Exception as exc:  # noqa: BLE001 - retried below for unique violations
                cur.execute("ROLLBACK TO SAVEPOINT user_insert")
                if getattr(exc, "sqlstate", None) != "23505":
                    raise
                username = item.values["username"]
                continue
            cur.execute("RELEASE SAVEPOINT user_insert")
            self._side_effects(ctx, item)
            return
        raise RowFailed("IntegrityError", f"username {username!r} kept colliding")

    def _side_effects(self, ctx: WriteContext, item: Item) -> None:
        """The rows Sentry's ORM creates with a new user."""
        if not ctx.settings.is_global:
            insert_side_effect(
                ctx,
                "sentry_lostpasswordhash",
                {"user_id": item.new_pk, "hash": secure_token(32), "date_added": ctx.now},
            )
        email = item.values.get("email")
        if email:
            insert_side_effect(
                ctx,
                "sentry_useremail",
                {
                    "user_id": item.new_pk,
                    "email": email,
                    "validation_hash": secure_token(32),
                    "date_hash_added": ctx.now,
                    "is_verified": False,
                },
            )
            # The unique index on lower(email) makes an existing address a no-op.
            insert_side_effect(ctx, "sentry_email", {"email": email, "date_added": ctx.now})


class EmailHandler(Handler):
    """``sentry.email``: get-or-create by address (case-insensitive)."""

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        for item in items:
            ctx.current = item
            email = item.values.get("email")
            existing = find_existing(ctx, {"email": email}, ci_columns=frozenset({"email"}))
            if existing is None:
                row = ctx.cur.execute(
                    "INSERT INTO sentry_email (id, email, date_added) "
                    "VALUES (%s, %s, COALESCE(%s::timestamptz, now())) "
                    "ON CONFLICT DO NOTHING RETURNING id",
                    (item.new_pk, email, item.values.get("date_added")),
                ).fetchone()
                if row is not None:
                    continue
                existing = find_existing(ctx, {"email": email}, ci_columns=frozenset({"email"}))
            item.new_pk, item.kind = existing, EXISTING


class UserEmailHandler(Handler):
    """``sentry.useremail``: verification reset outside Global; merges into the primary."""

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        if _user_was_merged(ctx, item):
            raise RowDropped("its user was merged into an existing user (--merge-users)")
        if not ctx.settings.is_global:
            item.values["is_verified"] = False
            item.values["validation_hash"] = secure_token(32)
            item.values["date_hash_added"] = ctx.now

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        for item in items:
            ctx.current = item
            existing = find_existing(
                ctx, {"user_id": item.values.get("user_id"), "email": item.values.get("email")}
            )
            if existing is None:
                insert_row(ctx, item)
            else:
                # The primary UserEmail created with the user: take the imported values.
                fields = {k: v for k, v in item.values.items() if k not in ("user_id", "email")}
                update_row(ctx, existing, fields)
                item.new_pk = existing


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
        except ValueError:
            value = raw
        if not isinstance(value, str) or value not in _timezones():
            raise RowInvalid(
                "Django validation error encountered: {'timezone': "
                f"['{value!s:.100} is not a valid timezone']}}"
            )
