"""A run's scratch tables in the target, and those that dead runs left behind.

A run of an import keeps UNLOGGED tables in the target: its held batches
(``relocate.db.held``: as large as the export's converted rows) and, until the constraint
check is done, its staging tables (``relocate.db.constraints``). The run drops them when it
ends, and its launcher does when the pipeline fails; a run that is killed leaves them. So
every import start (and every rollback) drops the tables of the runs that are dead:

* a run's launcher holds a session advisory lock keyed by the run's id for as long as it
  runs (``holding_run``); a dead process's lock goes with its session. Whoever cleans up
  tries the key (``pg_try_advisory_xact_lock``): success means the run is gone, and the
  lock is kept until the cleanup commits;
* a detached import's launcher exits once its job is submitted, so the tables of a run of
  a detached import stay while that import is ``running`` (the job may still read them),
  as a detached import counts as live for the Global wipe (``relocate.db.imports``).

The held table's comment names the import it belongs to; a staging table belongs to the
run whose id its name carries. A held table without that comment (a run of a relocate that
took no run lock) is left alone, with its run's staging tables.
"""

from __future__ import annotations

import re
import uuid
from contextlib import AbstractContextManager

import psycopg
from psycopg import sql

from relocate.db.advisory import advisory_key, holding_advisory_lock

HELD_PREFIX = "relocate_held_"
STAGING_PREFIX = "relocate_check_"
#: The names of a run's scratch tables: ``relocate_held_<run>``, ``relocate_check_<run>_<n>``.
_RUN_TABLE = re.compile(
    f"(?:{HELD_PREFIX}([0-9a-f]{{32}})|{STAGING_PREFIX}([0-9a-f]{{32}})_[0-9]+)"
)
_COMMENT = re.compile(r"relocate import ([0-9a-f]{32})")


def held_table(run_id: str) -> str:
    """The name of the run's held table (``relocate.db.held``)."""
    return f"{HELD_PREFIX}{uuid.UUID(run_id).hex}"


def staging_table(run_id: str, index: int) -> str:
    """The name of the run's ``index``-th staging table (``relocate.db.constraints``)."""
    return f"{STAGING_PREFIX}{uuid.UUID(run_id).hex}_{index}"


def run_key(run_id: str) -> int:
    """The advisory-lock key (signed 64-bit) a live run's launcher holds."""
    return advisory_key(b"relocate-run:", run_id)


def owner_comment(import_uuid: str) -> str:
    """The comment on a run's held table: the import it belongs to."""
    return f"relocate import {uuid.UUID(import_uuid).hex}"


def holding_run(conn: psycopg.Connection, run_id: str) -> AbstractContextManager[None]:
    """Holds the run's lock on ``conn`` (autocommit) until the block ends: its scratch
    tables are not dropped by others while it is held."""
    return holding_advisory_lock(conn, run_key(run_id))


def _run_tables(conn: psycopg.Connection) -> list[tuple[str, str, bool, str | None]]:
    """(run hex, table, is the held table, comment) of every scratch table in the target."""
    found = []
    for name, comment in conn.execute(
        "SELECT relname, obj_description(oid, 'pg_class') FROM pg_class "
        "WHERE relkind = 'r' AND pg_table_is_visible(oid) "
        "AND (starts_with(relname, %s) OR starts_with(relname, %s))",
        (HELD_PREFIX, STAGING_PREFIX),
    ).fetchall():
        match = _RUN_TABLE.fullmatch(name)
        if match is not None:
            found.append((match.group(1) or match.group(2), name, bool(match.group(1)), comment))
    return found


def _drop(conn: psycopg.Connection, names: list[str]) -> None:
    if names:
        conn.execute(
            sql.SQL("DROP TABLE IF EXISTS {}").format(
                sql.SQL(", ").join(map(sql.Identifier, names))
            )
        )


def drop_run_tables(conn: psycopg.Connection, run_id: str) -> None:
    """Drops whatever scratch tables run ``run_id`` has (idempotent). Commits."""
    run = uuid.UUID(run_id).hex
    _drop(conn, sorted(name for r, name, _, _ in _run_tables(conn) if r == run))
    conn.commit()


def drop_dead_run_tables(conn: psycopg.Connection) -> list[str]:
    """Drops the scratch tables of the runs that are dead (see the module's docstring);
    returns their names. Commits."""
    runs: dict[str, list[str]] = {}
    owners: dict[str, str] = {}
    unowned: set[str] = set()  # a held table without the comment: an older relocate's run
    for run, name, is_held, comment in _run_tables(conn):
        runs.setdefault(run, []).append(name)
        if is_held:
            owner = _COMMENT.fullmatch(comment or "")
            if owner:
                owners[run] = owner.group(1)
            else:
                unowned.add(run)
    detached_running = {
        row[0].hex
        for row in conn.execute(
            "SELECT import_uuid FROM relocate_import WHERE status = 'running' "
            "AND (flags ->> 'detached')::boolean IS TRUE"
        )
    }
    dropped: list[str] = []
    for run, names in sorted(runs.items()):
        if run in unowned or owners.get(run) in detached_running:
            continue  # its liveness cannot be told, or its job may still read them
        free = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (run_key(run),)).fetchone()
        if not (free and free[0]):
            continue  # its launcher runs
        _drop(conn, sorted(names))
        dropped += names
    conn.commit()
    return sorted(dropped)
