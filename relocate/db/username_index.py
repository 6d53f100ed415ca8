"""An index on ``lower(username)`` of ``auth_user``, for the case-insensitive name check.

Sentry's serializer refuses a username that another user has in any case
(``username__iexact``); relocate renames or merges such a user. Sentry's schema has no
index for that comparison, so each batch of users had to read every user of the target:
the check grew with the users already written, quadratic over an import (stage 1 took
164 s at 10M rows, 674k users). relocate creates the index when an import starts, if it
may, and keeps it: it changes nothing Sentry reads or writes, and the next import needs it
again. Without it (a role that does not own ``auth_user``, a table locked for longer than
``LOCK_TIMEOUT``), the check scans the table as before.
"""

from __future__ import annotations

import logging

import psycopg

log = logging.getLogger("relocate.username_index")

INDEX_NAME = "relocate_auth_user_lower_username"
#: How long the import waits for the lock CREATE INDEX takes (writes to auth_user wait
#: while it builds); past it, the import goes on without the index.
LOCK_TIMEOUT = "5s"


def has_lower_username_index(cur: psycopg.Cursor) -> bool:
    """Whether ``auth_user`` has a valid btree index on exactly ``lower(username)``, this
    one or an operator's (any name)."""
    row = cur.execute(
        """
        SELECT EXISTS (
            SELECT 1 FROM pg_index i
            WHERE i.indrelid = to_regclass('auth_user') AND i.indisvalid
              AND i.indpred IS NULL AND i.indnkeyatts = 1
              AND pg_get_indexdef(i.indexrelid, 1, false) = 'lower((username)::text)'
        )
        """
    ).fetchone()
    return bool(row and row[0])


def ensure_lower_username_index(conn: psycopg.Connection) -> bool:
    """Creates the index unless it (or an equivalent) exists; returns whether one exists.

    Runs in a transaction of its own. A failure (no privilege, the lock not granted in
    ``LOCK_TIMEOUT``) is logged and leaves the target as it was.
    """
    with conn.cursor() as cur:
        if cur.execute("SELECT to_regclass('auth_user')").fetchone()[0] is None:
            conn.commit()
            return False
        if has_lower_username_index(cur):
            conn.commit()
            return True
    conn.commit()
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            conn.execute(f"CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON auth_user (lower(username))")
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
        return True  # a concurrent import built it at the same time
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.LockNotAvailable) as exc:
        log.warning(
            "no index on lower(username) of auth_user (%s): each batch of users reads "
            "every user to check names case-insensitively, slower on large targets",
            exc.diag.message_primary or exc,
        )
        return False
    return True
