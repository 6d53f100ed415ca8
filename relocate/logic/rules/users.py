"""Rules of the User-scope models: users, emails, user emails, options, permissions, IPs.

Spec sections 6.1-6.3 and 7: sanitisation by scope, username collisions (rename with
Sentry's suffix scheme, or merge), the side-effect rows Sentry's ORM creates (primary
UserEmail and Email, LostPasswordHash), and the rows dropped for merged users.
"""

from __future__ import annotations

import ipaddress
import json
import zoneinfo
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import psycopg

from relocate.db.handler import (
    EXISTING,
    Handler,
    Item,
    RowDropped,
    RowFailed,
    SetBasedRules,
    WriteContext,
    copy_rows,
    index_lookup,
    insert_row,
    insert_side_effects,
    note_change,
    split_onto_existing,
    try_unique,
    update_rows,
)
from relocate.db.sql_literals import array_literal, bigint_array
from relocate.db.username_index import has_lower_username_index
from relocate.logic.convert import Converted, RowInvalid
from relocate.logic.rules.common import first_free, secure_token, unusable_password
from relocate.logic.settings import ImportSettings

MAX_USERNAME_LENGTH = 128


#: The ``language`` choices: Sentry's ``LANGUAGES`` (src/sentry/constants.py) is
#: ``settings.LANGUAGES`` (src/sentry/conf/server.py) kept to the locales Sentry ships
#: (src/sentry/locale/, ``pt_BR`` read as ``pt-br``). The set shipped varies by release;
#: this is every code in both lists over the releases read, so no valid export is refused.
LANGUAGE_CODES = frozenset(
    {
        "af", "ar", "bg", "ca", "cs", "da", "de", "el", "en", "es", "et", "fa", "fi", "fr",
        "gl", "he", "hi", "hu", "id", "it", "ja", "ko", "lt", "lv", "pl", "pt", "pt-br",
        "ro", "ru", "sk", "sl", "sv-se", "th", "tr", "uk", "vi", "zh-cn", "zh-tw",
    }
)  # fmt: skip
#: The ``theme`` choices of ``UserOptionsSerializer``.
THEMES = frozenset({"light", "dark", "system"})


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    """The ``timezone`` choices (Sentry's ``get_timezone_choices``: the IANA names)."""
    return frozenset(zoneinfo.available_timezones())


def _user_was_merged(ctx: WriteContext, item: Item, column: str = "user_id") -> bool:
    """Whether the row's user is an existing user the import merged into."""
    return item.values.get(column) in ctx.existing_targets("sentry.user")


class UserHandler(Handler):
    """``sentry.user`` (table auth_user)."""

    resolves_uniques = (frozenset({"username"}),)  # renamed, or merged

    def validate(self, row: Converted, settings: ImportSettings) -> None:
        # Sentry runs the row through its user serializer (``User.write_relocation_import``,
        # src/sentry/users/models/user.py): DRF's CharField trims the value and rejects a
        # blank one. There is no fallback to the email.
        username = row.values.get("username")
        if not isinstance(username, str) or not username.strip():
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
        # A username is taken when one differs from it only in case: Sentry's serializer
        # checks ``username__iexact`` and fails the import on such a row, relocate renames
        # or merges it like an exact collision. One query finds the batch's names already
        # taken; rows whose name is free (and first of its name in the batch) go in one
        # COPY, the others one by one after it, so the first row in file order keeps the
        # name. PostgreSQL's lower() gives the keys, so Python and the queries agree.
        keys = pg_lower(ctx, [item.values["username"] for item in items])
        claim_usernames(ctx.cur, keys)
        taken = taken_usernames(ctx.cur, keys, self._indexed(ctx.cur))
        fast: list[Item] = []
        slow: list[Item] = []
        for item, key in zip(items, keys):
            (slow if key in taken else fast).append(item)
            taken.add(key)
        if fast and not try_unique(ctx, lambda: copy_rows(ctx, fast)):
            # A concurrent batch took one of the names: do these one by one.
            slow = sorted(fast + slow, key=lambda i: i.ordinal)
        for item in slow:
            self._write_one(ctx, item)
        release_usernames(ctx.cur, keys)
        self._side_effects(ctx, [i for i in items if i.kind != EXISTING])

    def _indexed(self, cur: psycopg.Cursor) -> bool:
        """Whether the target has the ``lower(username)`` index (looked up once per
        handler: the import creates it before any write, relocate.db.username_index)."""
        indexed = getattr(self, "_has_index", None)
        if indexed is None:
            indexed = self._has_index = has_lower_username_index(cur)
        return indexed

    def _write_one(self, ctx: WriteContext, item: Item) -> None:
        original = item.values["username"]
        ctx.current = item
        for _ in range(3):
            existing = _username_owner(ctx, original)
            if existing is not None and ctx.settings.merge_users:
                item.new_pk, item.kind = existing, EXISTING
                return
            item.changes.pop("username", None)
            if existing is not None:
                # Sentry's rename (unique_db_instance) checks candidates
                # case-insensitively.
                free = first_free(
                    original,
                    MAX_USERNAME_LENGTH,
                    lambda c: _username_owner(ctx, c) is not None,
                )
                if free is None:
                    raise RowFailed("IntegrityError", f"no free username derived from {original!r}")
                item.values["username"] = free
                owner = ctx.cur.execute(
                    "SELECT username FROM auth_user WHERE id = %s", (existing,)
                ).fetchone()
                note_change(
                    item,
                    "username",
                    "renamed",
                    "the username is taken",
                    **{"from": original, "to": free},
                    collides_with={"id": existing, "username": owner[0] if owner else None},
                )
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
                (bigint_array(user_ids), array_literal([secure_token(32) for _ in items])),
                "sentry_lostpasswordhash",
            )
        # Receivers create_user_email (post_save User) and create_email (post_save
        # UserEmail), src/sentry/receivers/useremail.py and email.py: every new user gets
        # its primary UserEmail and that address's Email, an empty address included.
        emails = [i.values.get("email") or "" for i in items]
        insert_side_effects(
            ctx,
            "INSERT INTO sentry_useremail "
            "(user_id, email, validation_hash, date_hash_added, is_verified) "
            "SELECT u, e, h, now(), false FROM unnest(%s::bigint[], %s::text[], "
            "%s::text[]) AS t(u, e, h)",
            (
                bigint_array(user_ids),
                array_literal(emails),
                array_literal([secure_token(32) for _ in emails]),
            ),
            "sentry_useremail",
        )
        create_emails(ctx, emails)


def create_emails(ctx: WriteContext, emails: list[str]) -> None:
    """The Email rows Sentry's ``create_email`` receiver makes for new UserEmails.

    The unique index on lower(email) makes an address that exists already a no-op, as the
    receiver's ignored IntegrityError does. For UserEmails that is the usual case, not the
    exception: an export carries an Email row for every address, and Emails are written in
    the stage before UserEmails. So the insert skips taken addresses from the start.
    """
    if emails:
        insert_side_effects(
            ctx,
            "INSERT INTO sentry_email (email, date_added) "
            "SELECT e, now() FROM unnest(%s::text[]) AS t(e)",
            (array_literal(emails),),
            "sentry_email",
            often_taken=True,
        )


def _username_owner(ctx: WriteContext, username: str) -> int | None:
    """The user holding ``username``, compared case-insensitively (an exact match first)."""
    row = ctx.cur.execute(
        "SELECT id FROM auth_user WHERE lower(username) = lower(%s) "
        "ORDER BY username <> %s, id LIMIT 1",
        (username, username),
    ).fetchone()
    return row[0] if row else None


class EmailHandler(Handler):
    """``sentry.email``: get-or-create by address (case-insensitive).

    ``Email.write_relocation_import`` (src/sentry/users/models/email.py) does
    ``get_or_create(email=..., defaults=...)`` and then saves the imported row onto the one
    it found: an address that exists already takes the imported spelling and ``date_added``
    and is reported Existing.
    """

    resolves_uniques = (frozenset({"email"}),)
    # A batch of addresses, each at most once (case-insensitively): those the table holds
    # land on them (Existing), the others are inserted.
    set_based = SetBasedRules(
        onto_key=("email",),
        onto_lower=True,
        onto_kind=EXISTING,
        onto_columns=("email", "date_added"),
    )

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        keys = pg_lower(ctx, [i.values.get("email") or "" for i in items])
        known = _email_ids(ctx, keys)
        new: list[Item] = []
        onto: list[Item] = []
        for item, key in zip(items, keys):
            if key in known:
                item.new_pk, item.kind = known[key], EXISTING
                onto.append(item)
            else:
                known[key] = item.new_pk
                new.append(item)
        if new:
            inserted = {
                r[0]
                for r in ctx.cur.execute(
                    "INSERT INTO sentry_email (id, email, date_added) "
                    "SELECT i, e, COALESCE(d::timestamptz, now()) "
                    "FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS t(i, e, d) "
                    "ON CONFLICT DO NOTHING RETURNING id",
                    (
                        bigint_array(i.new_pk for i in new),
                        array_literal([i.values.get("email") or "" for i in new]),
                        array_literal([_text(i.values.get("date_added")) for i in new]),
                    ),
                )
            }
            lost = {i.new_pk: i for i in new if i.new_pk not in inserted}
            if lost:  # a concurrent batch created these addresses first
                lost_keys = pg_lower(ctx, [i.values.get("email") or "" for i in lost.values()])
                now_known = _email_ids(ctx, lost_keys)
                found = {old: now_known[key] for old, key in zip(lost, lost_keys, strict=True)}
                new_ids = {id(i) for i in new}
                for item in items:  # the lost rows, and those mapped to them
                    if item.new_pk in found:
                        if id(item) in new_ids:
                            onto.append(item)
                        item.new_pk, item.kind = found[item.new_pk], EXISTING
        onto.sort(key=lambda i: i.ordinal)
        update_rows(
            ctx,
            [
                (i.new_pk, {c: i.values[c] for c in ("email", "date_added") if c in i.values})
                for i in onto
            ],
        )


def taken_usernames(cur: psycopg.Cursor, keys: list[str], indexed: bool) -> set[str]:
    """The lower-cased names among ``keys`` that a user of the target has.

    With the ``lower(username)`` index, one probe per name (``index_lookup``); without it,
    one pass over the table with the names hashed: ``IN (SELECT unnest(...))``, not
    ``= ANY(...)``, whose generic plan, once psycopg prepares the statement, compares
    every user with every name (0.5 s per batch at 66k users).
    """
    if indexed:
        rows = index_lookup(
            cur,
            "SELECT k FROM unnest(%s::text[]) AS k CROSS JOIN LATERAL "
            "(SELECT 1 FROM auth_user WHERE lower(username) = k LIMIT 1) AS u",
            (array_literal(keys),),
        )
    else:
        rows = cur.execute(
            "SELECT lower(username) FROM auth_user "
            "WHERE lower(username) IN (SELECT unnest(%s::text[]))",
            (array_literal(keys),),
        ).fetchall()
    return {r[0] for r in rows}


def claim_usernames(cur: psycopg.Cursor, keys: list[str]) -> None:
    """Makes a concurrent batch that checks one of these lower-cased names wait until this
    batch commits (``relocate_username_claim``, relocate.db.ledger).

    No unique index catches a case-only collision between concurrent batches. Each name is
    a row of the claim table, inserted in sorted order (two batches never wait on each
    other crosswise); a second inserter of the name waits for the first's transaction,
    then finds the row gone and goes on, its check now seeing the first batch's users.
    Per name, so batches with different names never wait (64 hash buckets did: every
    batch of users took every bucket, and concurrent batches of users wrote in turn).
    """
    cur.execute(
        "INSERT INTO relocate_username_claim (key) "
        "SELECT DISTINCT k FROM unnest(%s::text[]) AS k ORDER BY 1 ON CONFLICT DO NOTHING",
        (array_literal(keys),),
    )


def release_usernames(cur: psycopg.Cursor, keys: list[str]) -> None:
    """Empties this batch's claims; a waiting batch goes on when this one commits."""
    cur.execute(
        "DELETE FROM relocate_username_claim WHERE key = ANY(%s::text[])", (array_literal(keys),)
    )


def pg_lower(ctx: WriteContext, values: list[str]) -> list[str]:
    """PostgreSQL's lower() of each value, so Python keys agree with the queries' keys."""
    if not values:
        return []
    return [
        r[0]
        for r in ctx.cur.execute(
            "SELECT lower(v) FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, i) ORDER BY i",
            (array_literal(values),),
        )
    ]


def _email_ids(ctx: WriteContext, keys: list[str]) -> dict[str, int]:
    """Lower-cased address -> id of the Email rows that hold one of ``keys``."""
    rows = ctx.cur.execute(
        "SELECT lower(email), min(id) FROM sentry_email "
        "WHERE lower(email) IN (SELECT unnest(%s::text[])) GROUP BY lower(email)",
        (array_literal(keys),),
    )
    return dict(rows.fetchall())


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _unverified(ctx: WriteContext) -> dict[str, Any]:
    """An address's verification outside Global: reset, with a new hash to confirm it."""
    return {"is_verified": False, "validation_hash": secure_token(32), "date_hash_added": ctx.now}


class UserEmailHandler(Handler):
    """``sentry.useremail``: verification reset outside Global; merges into the primary."""

    resolves_uniques = (frozenset({"user_id", "email"}),)
    # A batch of new users' addresses, each at most once: the primary address the user
    # was created with takes the imported values, the others are inserted with their Email.
    set_based = SetBasedRules(inserted_targets=("user_id",), onto_key=("user_id", "email"))

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        if _user_was_merged(ctx, item):
            raise RowDropped("its user was merged into an existing user (--merge-users)")
        if not ctx.settings.is_global:
            item.values.update(_unverified(ctx))

    def prepare_set(self, ctx: WriteContext, rows: Sequence[Converted]) -> Sequence[Converted]:
        if ctx.settings.is_global:
            return rows
        return [Converted(r.model, r.ordinal, r.pk, {**r.values, **_unverified(ctx)}) for r in rows]

    def after_set(self, ctx: WriteContext, inserted: list[Converted]) -> None:
        create_emails(ctx, [r.values.get("email") or "" for r in inserted])

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        pairs = [(i.values.get("user_id"), i.values.get("email")) for i in items]
        existing = dict(
            ((u, e), row_id)
            for row_id, u, e in index_lookup(
                ctx.cur,
                "SELECT x.id, t.u, t.e FROM unnest(%s::bigint[], %s::text[]) AS t(u, e) "
                "CROSS JOIN LATERAL (SELECT x.id FROM sentry_useremail x "
                "WHERE x.user_id = t.u AND x.email = t.e LIMIT 1) AS x",
                (array_literal(p[0] for p in pairs), array_literal(p[1] for p in pairs)),
            )
        )
        new, onto = split_onto_existing(items, pairs, existing)
        copy_rows(ctx, new)
        # Receiver create_email (post_save UserEmail, created): each new UserEmail's Email.
        create_emails(ctx, [i.values.get("email") or "" for i in new])
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

    set_based = SetBasedRules(inserted_targets=("user_id",))

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        if _user_was_merged(ctx, item):
            raise RowDropped("its user was merged into an existing user (--merge-users)")


class UserOptionHandler(UserOwnedHandler):
    """``sentry.useroption``: Sentry's option validation; a repeated global option skipped.

    ``UserOption.write_relocation_import`` (src/sentry/users/models/user_option.py) runs
    ``UserOptionsSerializer(data={key: value}, partial=True)``
    (src/sentry/users/api/endpoints/user_details.py). Its fields are camelCase, so of the
    stored (snake_case) keys only ``language``, ``timezone`` and ``theme`` meet a field and
    are checked (DRF ChoiceFields); other keys pass unchecked. A global option (no project,
    no organization) whose (user, key) exists already makes the method return None: the
    row is not imported.
    """

    # Stricter than the rule (any option, not only global ones): a batch of new options
    # of new users is a plain insert; any other goes row by row.
    set_based = SetBasedRules(
        new_keys=(("user_id", "project_id", "organization_id", "key"),),
        inserted_targets=("user_id",),
    )

    def validate(self, row: Converted, settings: ImportSettings) -> None:
        key = row.values.get("key")
        choices = _OPTION_CHOICES.get(key) if isinstance(key, str) else None
        if choices is None:
            return
        raw = row.values.get("value")
        try:
            value = json.loads(raw) if isinstance(raw, str) else raw
        except (ValueError, RecursionError):  # not JSON, or nested too deep to decode
            value = raw
        if value is None:
            problem = "This field may not be null."
        elif str(value) in choices():  # DRF looks the choice up by str(value)
            return
        else:
            problem = f'"{value!s:.100}" is not a valid choice.'
        raise RowInvalid(f"Django validation error encountered: {{'{key}': ['{problem}']}}")

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        super().prepare(ctx, item)
        values = item.values
        if values.get("project_id") is not None or values.get("organization_id") is not None:
            return
        seen, claimed = ctx.scratch.get("global_options") or self._global_options(ctx)
        key = (values.get("user_id"), values.get("key"))
        # A row this import wrote already (a resumed or retried batch) is not a repeat.
        if key in seen and item.old_pk not in claimed:
            raise RowDropped(
                f"the user has a global option `{values.get('key')!s:.64}` already "
                "(Sentry keeps the first)"
            )
        seen.add(key)

    @staticmethod
    def _global_options(ctx: WriteContext) -> tuple[set[tuple[int, str]], set[int]]:
        """The global (user, key) pairs of the batch's users in the target, and the rows
        of the batch the ledger holds already (one query each, once per batch)."""
        users = sorted(
            {
                entry.new_pk
                for r in ctx.batch
                if (entry := ctx.target("sentry.user", r.values.get("user_id"))) is not None
            }
        )
        seen = {
            (u, k)
            for u, k in ctx.cur.execute(
                "SELECT user_id, key FROM sentry_useroption WHERE user_id = ANY(%s::bigint[]) "
                "AND project_id IS NULL AND organization_id IS NULL",
                (bigint_array(users),),
            )
        }
        # One index probe per row: a plan of ``old_pk = ANY(...)`` on the ledger's stale
        # statistics read all of the model's ledger rows (0.27 s per batch at 1M rows).
        claimed = {
            r[0]
            for r in index_lookup(
                ctx.cur,
                "SELECT r.old_pk FROM unnest(%s::bigint[]) AS r(old_pk) "
                "CROSS JOIN LATERAL (SELECT 1 FROM relocate_pk_map m "
                "WHERE m.import_uuid = %s AND m.model = %s AND m.old_pk = r.old_pk "
                "LIMIT 1) AS m",
                (bigint_array(r.pk for r in ctx.batch), ctx.settings.import_uuid, ctx.model.name),
            )
        }
        ctx.scratch["global_options"] = (seen, claimed)
        return seen, claimed


#: Stored option key -> the choices Sentry's ``UserOptionsSerializer`` accepts for it.
_OPTION_CHOICES: dict[str, Callable[[], frozenset[str]]] = {
    "language": lambda: LANGUAGE_CODES,
    "timezone": _timezones,
    "theme": lambda: THEMES,
}


class UserIpHandler(Handler):
    """``sentry.userip``: get-or-create per (user, ip), country/region from GeoIP.

    ``UserIP.write_relocation_import`` (src/sentry/users/models/userip.py) does
    ``get_or_create(user, ip_address)``, then sets ``first_seen`` and ``last_seen`` from the
    row being written and saves: of two rows for one (user, ip), the later one's times stay.
    """

    resolves_uniques = (frozenset({"user_id", "ip_address"}),)

    def prepare(self, ctx: WriteContext, item: Item) -> None:
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
        # One lookup and one COPY per batch (a get-or-create per row took 171 s of the 10M
        # Global import): rows whose (user, ip) the target or an earlier row of the batch
        # has land on that row and give it their times, in file order.
        users = [i.values["user_id"] for i in items]
        addresses = [i.values["ip_address"] for i in items]
        key_of = {a: _address_key(a) for a in addresses}
        existing = {
            (user_id, key_of[address]): row_id
            for row_id, user_id, address in index_lookup(
                ctx.cur,
                "SELECT x.id, t.u, t.ip FROM unnest(%s::bigint[], %s::text[]) AS t(u, ip) "
                "CROSS JOIN LATERAL (SELECT x.id FROM sentry_userip x "
                "WHERE x.user_id = t.u AND x.ip_address = t.ip::inet LIMIT 1) AS x",
                (array_literal(users), array_literal(addresses)),
            )
        }
        keys = [(u, key_of[a]) for u, a in zip(users, addresses, strict=True)]
        new, onto = split_onto_existing(items, keys, existing)
        copy_rows(ctx, new)
        update_rows(
            ctx,
            [
                (i.new_pk, {c: i.values[c] for c in ("first_seen", "last_seen") if c in i.values})
                for i in onto
            ],
        )


def _address_key(address: str) -> Any:
    """An address as PostgreSQL's inet compares it (``1.2.3.4`` equals ``1.2.3.4/32``)."""
    return ipaddress.ip_interface(address)
