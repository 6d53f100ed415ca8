"""The Global-scope wipe: Sentry deletes every row of every model before a global import."""

from __future__ import annotations

import psycopg
from psycopg import sql

from relocate.db.imports import ImportConflict, record_wiped, refuse_wipe_while_running
from relocate.schemas.registry import Registry

#: Tables Sentry's import writes as side effects; wiped with the models.
SIDE_EFFECT_TABLES = (
    "sentry_lostpasswordhash",
    "sentry_organizationslugreservation",
    "sentry_organizationmapping",
    "sentry_organizationmembermapping",
    "sentry_regionimportchunk",
    "sentry_controlimportchunk",
    "sentry_controlimportchunkreplica",
)


def wipe_for_import(conn: psycopg.Connection, registry: Registry, import_uuid: str) -> bool:
    """Wipes the target for a Global import, unless this import already wrote rows.

    A resumed Global import (same UUID, rows in the ledger) must not wipe what it wrote.
    Returns whether the wipe ran.

    Raises:
        ImportConflict: another import is running on the target (nothing is wiped).
    """
    # The lock waits for batches in flight (a concurrent run of this import) to commit,
    # so their ledger rows are seen here and their rows are not wiped under them. It
    # conflicts with itself too: two runs wiping at once take turns (under SHARE both
    # held it, then deadlocked on each other's TRUNCATE and ledger DELETE).
    conn.execute("LOCK TABLE relocate_pk_map IN SHARE ROW EXCLUSIVE MODE")
    started = conn.execute(
        "SELECT 1 FROM relocate_pk_map WHERE import_uuid = %s LIMIT 1", (import_uuid,)
    ).fetchone()
    if started:
        conn.commit()
        return False
    # No import can register while the wipe decides and runs (an INSERT conflicts with
    # this lock), so the imports found not live here stay so until it commits.
    conn.execute("LOCK TABLE relocate_import IN SHARE ROW EXCLUSIVE MODE")
    try:
        refuse_wipe_while_running(conn, import_uuid)
    except ImportConflict:
        conn.rollback()
        raise
    wipe_database(conn, registry, keep_import=import_uuid)
    return True


def wipe_database(
    conn: psycopg.Connection, registry: Registry, keep_import: str | None = None
) -> list[str]:
    """Empties every table the registry knows (relocatable and excluded models that exist
    in the target) and the side-effect tables, restarting their id sequences.

    Ledger entries of other imports are deleted too (they describe rows that no longer
    exist); the report is kept, it is history. Returns the tables wiped.
    """
    names = [m.table for m in registry.models] + [t for _, t in registry.excluded]
    names += list(SIDE_EFFECT_TABLES)
    existing = {
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
    }
    tables = [t for t in dict.fromkeys(names) if t in existing]
    if tables:
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(map(sql.Identifier, tables))
            )
        )
    # Imports whose ledger rows go are marked, so that one still running fails at its end
    # instead of reporting success without the rows (relocate.db.imports).
    wiped = conn.execute(
        "WITH gone AS (DELETE FROM relocate_pk_map WHERE import_uuid IS DISTINCT FROM %s "
        "RETURNING import_uuid) SELECT import_uuid, count(*) FROM gone GROUP BY import_uuid",
        (keep_import,),
    ).fetchall()
    record_wiped(conn, {u: n for u, n in wiped}, keep_import)
    if conn.execute("SELECT to_regclass('relocate_progress')").fetchone()[0] is not None:
        # Their rows written are gone with their ledger: a resumed run writes them again.
        conn.execute(
            "DELETE FROM relocate_progress WHERE import_uuid IS DISTINCT FROM %s "
            "AND kind = 'written'",
            (keep_import,),
        )
    conn.execute(
        "UPDATE relocate_import SET status = 'wiped' "
        "WHERE status <> 'wiped' AND import_uuid IS DISTINCT FROM %s",
        (keep_import,),
    )
    conn.commit()
    return tables
