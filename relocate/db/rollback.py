"""``relocate rollback``: undo one import, using what the ledger kept.

Rows the import inserted are deleted and rows it overwrote get their old values back,
in reverse stage order, in one transaction, together with the rows it created beside the
export's rows (``relocate_side_effect``) and its chunk records. Rows it only mapped to
(Existing) are not touched. It refuses when a row that is not part of the import points at
a row it would delete (a later import merged into its user, or someone added a member to
its organization): deleting would break that row. It also refuses, naming the import and
the rows, while a later import's overwrite of a row it wrote stands (``--overwrite-configs``
twice): restoring its old values would discard the later import's, and rolling back the
later import afterwards would bring this one's back. Rolled back newest first, each
import restores what it found.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from relocate.db.run_tables import drop_dead_run_tables
from relocate.schemas.registry import Registry


class RollbackRefused(RuntimeError):
    """The rollback would break rows that depend on what it removes."""


@dataclass
class RollbackResult:
    deleted: dict[str, int] = field(default_factory=dict)
    restored: dict[str, int] = field(default_factory=dict)


#: Side-effect tables and the columns through which they point at imported rows.
SIDE_EFFECT_REFERENCES = {
    "sentry_lostpasswordhash": [("user_id", "auth_user")],
    "sentry_useremail": [("user_id", "auth_user")],
    "sentry_organizationslugreservation": [("organization_id", "sentry_organization")],
    "sentry_organizationmapping": [("organization_id", "sentry_organization")],
    "sentry_organizationmembermapping": [
        ("organization_id", "sentry_organization"),
        ("organizationmember_id", "sentry_organizationmember"),
        ("user_id", "auth_user"),
    ],
    # Replicas (relocate.logic.rules.replicas): the row each copies, and its organization.
    "hybridcloud_organizationslugreservationreplica": [
        ("organization_slug_reservation_id", "sentry_organizationslugreservation"),
        ("organization_id", "sentry_organization"),
    ],
    "hybridcloud_orgauthtokenreplica": [
        ("orgauthtoken_id", "sentry_orgauthtoken"),
        ("organization_id", "sentry_organization"),
    ],
    "hybridcloud_apitokenreplica": [("apitoken_id", "sentry_apitoken"), ("user_id", "auth_user")],
    "hybridcloud_apikeyreplica": [
        ("apikey_id", "sentry_apikey"),
        ("organization_id", "sentry_organization"),
    ],
    "sentry_authproviderreplica": [
        ("auth_provider_id", "sentry_authprovider"),
        ("organization_id", "sentry_organization"),
    ],
    "sentry_authidentityreplica": [
        ("auth_identity_id", "sentry_authidentity"),
        ("user_id", "auth_user"),
    ],
    "sentry_organizationmember_teamsreplica": [
        ("organizationmemberteam_id", "sentry_organizationmember_teams"),
        ("team_id", "sentry_team"),
        ("organization_id", "sentry_organization"),
    ],
    "sentry_teamreplica": [("team_id", "sentry_team"), ("organization_id", "sentry_organization")],
}


def _deletions(
    conn: psycopg.Connection, registry: Registry, import_uuid: str
) -> dict[str, set[int]]:
    """table -> ids this import created (Inserted rows and side effects)."""
    by_table: dict[str, set[int]] = defaultdict(set)
    for model, new_pk in conn.execute(
        "SELECT model, new_pk FROM relocate_pk_map WHERE import_uuid = %s AND kind = 'Inserted'",
        (import_uuid,),
    ):
        info = registry.get(model)
        if info is not None:
            by_table[info.table].add(new_pk)
    for table, row_id in conn.execute(
        "SELECT table_name, row_id FROM relocate_side_effect WHERE import_uuid = %s",
        (import_uuid,),
    ):
        by_table[table].add(row_id)
    return by_table


def _references(registry: Registry) -> list[tuple[str, str, str]]:
    """(referencing table, column, referenced table) for every known reference."""
    refs = []
    for model in registry.models:
        for fk in model.foreign_keys:
            if fk.excluded:
                continue
            refs.append((model.table, fk.column, registry[fk.target].table))
    for table, columns in SIDE_EFFECT_REFERENCES.items():
        refs.extend((table, column, target) for column, target in columns)
    return refs


def _check_dependents(
    conn: psycopg.Connection, registry: Registry, doomed: dict[str, set[int]]
) -> None:
    existing = {
        r[0]
        for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    }
    problems = []
    for table, column, target in _references(registry):
        if target not in doomed or table not in existing:
            continue
        targets = sorted(doomed[target])
        own = sorted(doomed.get(table, ()))
        query = sql.SQL(
            "SELECT id, {col} FROM {table} WHERE {col} = ANY(%s) AND NOT (id = ANY(%s)) LIMIT 3"
        ).format(col=sql.Identifier(column), table=sql.Identifier(table))
        for row_id, ref in conn.execute(query, (targets, own)):
            problems.append(f"{table} id {row_id} ({column} = {ref})")
    if problems:
        raise RollbackRefused(
            "refusing to roll back: rows written after this import depend on rows it "
            "created: "
            + "; ".join(problems[:10])
            + ("" if len(problems) <= 10 else f"; and {len(problems) - 10} more")
        )


def _check_later_overwrites(conn: psycopg.Connection, import_uuid: str) -> None:
    """Refuses when another import overwrote, after this one, a row this one wrote.

    Restoring (or deleting) such a row would silently discard the later import's values,
    and rolling back the later import afterwards would bring this import's values back.
    Rolled back in the reverse order, each restores what it found. "After" is the order
    of the ledger entries (the time of the transactions that wrote them).
    """
    rows = conn.execute(
        """
        SELECT later.import_uuid, i.scope, i.started_at, mine.model, mine.new_pk
        FROM relocate_pk_map later
        JOIN relocate_pk_map mine
          ON mine.import_uuid = %(u)s AND mine.model = later.model
         AND mine.new_pk = later.new_pk AND mine.kind IN ('Inserted', 'Overwrite')
        LEFT JOIN relocate_import i ON i.import_uuid = later.import_uuid
        WHERE later.kind = 'Overwrite' AND later.import_uuid <> %(u)s
          AND later.created_at >= mine.created_at
        ORDER BY later.created_at, mine.model, mine.new_pk
        LIMIT 50
        """,
        {"u": import_uuid},
    ).fetchall()
    if not rows:
        return
    by_import: dict[str, tuple[str, list[str]]] = {}
    for later, scope, started_at, model, new_pk in rows:
        when = started_at.isoformat(timespec="seconds") if started_at else "unknown time"
        label = f"import {later.hex} ({scope or 'unknown scope'}, started {when})"
        by_import.setdefault(later.hex, (label, []))[1].append(f"{model} id {new_pk}")
    parts = [
        f"{label} overwrote {', '.join(cells[:5])}"
        + (f" and {len(cells) - 5} more" if len(cells) > 5 else "")
        for label, cells in by_import.values()
    ]
    raise RollbackRefused(
        f"refusing to roll back import {import_uuid}: later imports overwrote rows it "
        "wrote, and restoring them would discard their values: "
        + "; ".join(parts)
        + ". Roll those imports back first."
    )


def rollback_import(
    conn: psycopg.Connection, registry: Registry, import_uuid: str
) -> RollbackResult:
    """Removes what ``import_uuid`` inserted and restores what it overwrote.

    Raises:
        RollbackRefused: later rows depend on rows the import created, or a later import
            overwrote rows it wrote.
        LookupError: nothing is known of that import.
    """
    result = RollbackResult()
    with conn.transaction():
        known = conn.execute(
            "SELECT 1 FROM relocate_import WHERE import_uuid = %s", (import_uuid,)
        ).fetchone()
        if not known:
            raise LookupError(f"no import {import_uuid} in this database")
        _check_later_overwrites(conn, import_uuid)
        doomed = _deletions(conn, registry, import_uuid)
        _check_dependents(conn, registry, doomed)
        # Overwritten rows first get their old values back (they are never deleted).
        for model, new_pk, previous in conn.execute(
            "SELECT model, new_pk, previous FROM relocate_pk_map WHERE import_uuid = %s "
            "AND kind = 'Overwrite' AND previous IS NOT NULL ORDER BY stage DESC",
            (import_uuid,),
        ).fetchall():
            table = registry[model].table
            conn.execute(
                sql.SQL("UPDATE {} SET {} WHERE id = %s").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(
                        sql.SQL("{} = %s").format(sql.Identifier(c)) for c in previous
                    ),
                ),
                [*previous.values(), new_pk],
            )
            result.restored[table] = result.restored.get(table, 0) + 1
        # Side effects first, then models in reverse stage order: children before parents.
        stage_of = {m.table: m.stage for m in registry.models}
        order = sorted(doomed, key=lambda t: -stage_of.get(t, 99))
        for table in order:
            ids = sorted(doomed[table])
            cur = conn.execute(
                sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(sql.Identifier(table)),
                (ids,),
            )
            result.deleted[table] = cur.rowcount
        for table in (
            "sentry_regionimportchunk",
            "sentry_controlimportchunk",
            "sentry_controlimportchunkreplica",
        ):
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
                continue  # a target without Sentry's chunk tables has no records to remove
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE import_uuid = %s").format(sql.Identifier(table)),
                (import_uuid,),
            )
        conn.execute("DELETE FROM relocate_pk_map WHERE import_uuid = %s", (import_uuid,))
        conn.execute("DELETE FROM relocate_side_effect WHERE import_uuid = %s", (import_uuid,))
        if conn.execute("SELECT to_regclass('relocate_progress')").fetchone()[0] is not None:
            conn.execute("DELETE FROM relocate_progress WHERE import_uuid = %s", (import_uuid,))
        conn.execute(
            "UPDATE relocate_import SET status = 'rolled back', finished_at = now() "
            "WHERE import_uuid = %s",
            (import_uuid,),
        )
    drop_dead_run_tables(conn)  # what killed runs of this import (or another) left
    return result
