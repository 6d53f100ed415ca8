"""The imports a target knows (``relocate_import``): identity, liveness and the Global wipe.

* **Identity.** An import UUID is bound to what it imports: its scope, the flags that change
  the result, and the digest of its export. A rerun under the same ``--import-uuid``
  resumes the import only when they match; otherwise it is refused, saying what differs
  (merging another export into an import would make neither resumable nor rollbackable).
* **Liveness.** ``status = 'running'`` also stays on an import whose process died. A live
  import is told apart by a lock: its launching process holds a *shared* session advisory
  lock keyed by the import UUID (shared, as two runs of one import may run at once) for as
  long as it runs, and a dead process's lock goes with its session. Whoever needs to know
  tries the key exclusively (``pg_try_advisory_xact_lock``): success means nobody runs it,
  and the transaction-scoped lock keeps the import from starting again until the caller
  commits. A detached import (``--detach``) has no launcher left to hold the lock, so
  while it is ``running`` it counts as live; if its job is known to be gone, its row is
  marked ``failed`` by hand.
* **The Global wipe** refuses while another import is live (its rows would be deleted under
  it), and records on every import whose ledger rows it deleted by whom and when. An
  import that finds such a record at its end fails, however it went otherwise.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from relocate.db.advisory import advisory_key, holding_advisory_lock
from relocate.logic.settings import ImportSettings
from relocate.schemas.registry import IMPORT_SCOPES

#: The flags that change what an import writes: a resumed import must have the same.
BOUND_FLAGS = {
    "merge_users": "--merge-users",
    "overwrite_configs": "--overwrite-configs",
    "filter_usernames": "--filter-usernames",
    "filter_org_slugs": "--filter-org-slugs",
}

#: The table no import of a relocation scope can do without. A target that lacks one of
#: these for the import's scopes has no (usable) Sentry schema; one that lacks other
#: tables imports the rest and reports the rows of the missing tables as skipped.
CORE_TABLES = {
    "User": "auth_user",
    "Organization": "sentry_organization",
    "Config": "sentry_option",
}


class ImportConflict(RuntimeError):
    """Another import, or what this import UUID is bound to, stands in the way."""


class SchemaMissing(RuntimeError):
    """The target lacks the tables the import's scope needs."""


def live_key(import_uuid: str) -> int:
    """The advisory-lock key (signed 64-bit) that a live import's launcher holds."""
    return advisory_key(b"relocate-live:", import_uuid)


def holding_liveness(conn: psycopg.Connection, import_uuid: str) -> AbstractContextManager[None]:
    """Holds the import's liveness lock on ``conn`` (autocommit) until the block ends.

    Waits while a Global wipe holds it (it is then deciding whether this import is live).
    """
    return holding_advisory_lock(conn, live_key(import_uuid), shared=True)


@dataclass(frozen=True)
class RunningImport:
    """An import of the target that is running, as ``live_imports`` found it."""

    import_uuid: str
    scope: str
    started_at: datetime
    detached: bool

    def describe(self) -> str:
        text = (
            f"import {self.import_uuid} ({self.scope}, started "
            f"{self.started_at.isoformat(timespec='seconds')}"
        )
        if self.detached:
            text += (
                "; detached, so whether its job still runs cannot be told from here: if it "
                "has ended, mark it with UPDATE relocate_import SET status = 'failed' WHERE "
                f"import_uuid = '{self.import_uuid}'"
            )
        return text + ")"


def live_imports(conn: psycopg.Connection, exclude: str) -> list[RunningImport]:
    """The imports other than ``exclude`` that are running now, in the open transaction.

    An import that is ``running`` but whose lock nobody holds (its process died) is not
    live; its liveness lock is then held until the transaction ends, so it cannot start
    again in between.
    """
    rows = conn.execute(
        "SELECT import_uuid, scope, started_at, flags FROM relocate_import "
        "WHERE status = 'running' AND import_uuid <> %s ORDER BY started_at",
        (exclude,),
    ).fetchall()
    live = []
    for import_uuid, scope, started_at, flags in rows:
        key = live_key(import_uuid.hex)
        detached = bool((flags or {}).get("detached"))
        if not detached:
            taken = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()
            if taken and taken[0]:
                continue  # nobody holds it: the import's process is gone
        live.append(RunningImport(import_uuid.hex, scope, started_at, detached))
    return live


def refuse_wipe_while_running(conn: psycopg.Connection, import_uuid: str) -> None:
    """Raises ``ImportConflict`` when imports other than ``import_uuid`` are live."""
    busy = live_imports(conn, exclude=import_uuid)
    if busy:
        raise ImportConflict(
            "refusing the Global import: its wipe would delete every row of the target, "
            "including those of imports still running: "
            + "; ".join(b.describe() for b in busy)
            + ". Rerun it once they have ended."
        )


def require_schema(conn: psycopg.Connection, scope: str) -> None:
    """Raises ``SchemaMissing`` when the target lacks a core table of ``scope``.

    Checked before anything is read or created, so that a DSN pointing at the wrong
    database, or at a database nobody prepared, changes nothing there.
    """
    needed = [CORE_TABLES[s] for s in sorted(IMPORT_SCOPES[scope]) if s in CORE_TABLES]
    found = conn.execute(
        "SELECT name FROM unnest(%s::text[]) AS t(name) WHERE to_regclass(name) IS NOT NULL",
        (needed,),
    ).fetchall()
    conn.commit()
    missing = sorted(set(needed) - {r[0] for r in found})
    if not missing:
        return
    what = (
        "has no Sentry schema" if len(missing) == len(needed) else "lacks tables of Sentry's schema"
    )
    raise SchemaMissing(
        f"the target database {what} (no table {', '.join(missing)}, which a {scope} "
        "import needs): create the schema with `relocate schema create --dsn DSN` (the "
        "same --dsn, or --dsn-secret, as this import), or point --dsn at Sentry's database"
    )


def import_flags(settings: ImportSettings, *, detached: bool = False) -> dict[str, Any]:
    """What ``relocate_import.flags`` records of an import's settings."""

    def names(value: frozenset[str] | None) -> list[str] | None:
        return None if value is None else sorted(value)

    return {
        "merge_users": settings.merge_users,
        "overwrite_configs": settings.overwrite_configs,
        "filter_usernames": names(settings.filter_usernames),
        "filter_org_slugs": names(settings.filter_org_slugs),
        "detached": detached,
    }


def _shown(value: Any) -> str:
    if value is None:
        return "not given"
    if isinstance(value, bool):
        return "given" if value else "not given"
    if isinstance(value, list):
        return ",".join(value) if value else "(empty)"
    return str(value)


def _differences(
    stored_scope: str,
    stored_flags: dict[str, Any],
    stored_digest: str | None,
    settings: ImportSettings,
    flags: dict[str, Any],
    digest: str | None,
) -> list[str]:
    problems = []
    if stored_scope != settings.scope:
        problems.append(
            f"it was started in the {stored_scope} scope, this run is a {settings.scope} import"
        )
    if stored_digest is not None and digest is not None and stored_digest != digest:
        problems.append(
            f"it was started from another export ({stored_digest}; the export given is {digest})"
        )
    for key, flag in BOUND_FLAGS.items():
        if key in stored_flags and stored_flags[key] != flags[key]:
            problems.append(
                f"{flag} was {_shown(stored_flags[key])} then, is {_shown(flags[key])} now"
            )
    return problems


def register_import(
    conn: psycopg.Connection,
    settings: ImportSettings,
    *,
    source_digest: str | None = None,
    detached: bool = False,
) -> None:
    """Records the import as running, or resumes it when its UUID is known and bound to
    the same scope, flags and export.

    A Global import that has not wiped yet is refused here, before anything is written,
    while other imports are live (the wipe checks again, atomically, when it runs).

    Raises:
        ImportConflict: the UUID is bound to something else, or (Global) other imports run.
    """
    flags = import_flags(settings, detached=detached)
    with conn.transaction():
        if (
            settings.is_global
            and not conn.execute(
                "SELECT 1 FROM relocate_pk_map WHERE import_uuid = %s LIMIT 1",
                (settings.import_uuid,),
            ).fetchone()
        ):
            # (A resumed Global import that wrote rows already does not wipe again.)
            refuse_wipe_while_running(conn, settings.import_uuid)
        for _ in range(2):
            known = conn.execute(
                "SELECT scope, flags, source_digest FROM relocate_import "
                "WHERE import_uuid = %s FOR UPDATE",
                (settings.import_uuid,),
            ).fetchone()
            if known is not None:
                break
            inserted = conn.execute(
                "INSERT INTO relocate_import (import_uuid, scope, flags, source_digest) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (import_uuid) DO NOTHING "
                "RETURNING import_uuid",
                (settings.import_uuid, settings.scope, json.dumps(flags), source_digest),
            ).fetchone()
            if inserted is not None:
                return
        assert known is not None  # the row that won the insert is there now
        scope, stored_flags, stored_digest = known
        problems = _differences(
            scope, stored_flags or {}, stored_digest, settings, flags, source_digest
        )
        if problems:
            raise ImportConflict(
                f"import {settings.import_uuid} exists and this run does not match it: "
                + "; ".join(problems)
                + ". An import UUID is bound to its scope, its export and the flags that "
                "change the result: rerun with the same ones to resume it, or leave out "
                "--import-uuid to start a new import."
            )
        # A resume: running again. A wipe recorded on it is history now (the wipe
        # deleted its ledger rows, so this run imports what is missing afresh).
        conn.execute(
            "UPDATE relocate_import SET status = 'running', finished_at = NULL, "
            "flags = flags || %s::jsonb, source_digest = COALESCE(source_digest, %s), "
            "wiped_by = NULL, wiped_at = NULL, wiped_rows = NULL WHERE import_uuid = %s",
            (json.dumps(flags), source_digest, settings.import_uuid),
        )


def record_wiped(conn: psycopg.Connection, wiped: dict[str, int], by_import: str | None) -> None:
    """Marks the imports whose ledger rows a wipe deleted (import UUID -> rows)."""
    conn.execute(
        "UPDATE relocate_import SET status = 'wiped', wiped_by = %s, wiped_at = now(), "
        "wiped_rows = COALESCE(wiped_rows, 0) + t.n "
        "FROM unnest(%s::uuid[], %s::bigint[]) AS t(u, n) WHERE import_uuid = t.u",
        (by_import, list(wiped), list(wiped.values())),
    )


def fail_if_wiped(conn: psycopg.Connection, settings: ImportSettings) -> None:
    """Raises ``ImportConflict`` (and marks the import failed) when a wipe deleted rows
    of this import since it was started or resumed."""
    row = conn.execute(
        "SELECT wiped_by, wiped_at, wiped_rows FROM relocate_import "
        "WHERE import_uuid = %s AND wiped_at IS NOT NULL",
        (settings.import_uuid,),
    ).fetchone()
    if row is None:
        conn.commit()
        return
    conn.execute(
        "UPDATE relocate_import SET status = 'failed', finished_at = now() WHERE import_uuid = %s",
        (settings.import_uuid,),
    )
    conn.commit()
    wiped_by, wiped_at, wiped_rows = row
    by = f"Global import {wiped_by.hex}" if wiped_by is not None else "a Global wipe"
    raise ImportConflict(
        f"import {settings.import_uuid} failed: {by} wiped the target at "
        f"{wiped_at.isoformat(timespec='seconds')} while this import ran, deleting "
        f"{wiped_rows:,} of its rows, and what it wrote afterwards lacks them. Rerun with "
        f"--import-uuid {settings.import_uuid} to import it again."
    )
