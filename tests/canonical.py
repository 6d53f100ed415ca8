"""A canonical dump of an import's target: comparable between databases.

``canonical_dump(dsn)`` reads every table of the registry, the side-effect tables, the
chunk tables and relocate's ledger, and rewrites every value that depends on the order in
which ids were drawn from the sequences:

* a row's own id becomes its identity in the pk-map ledger, ``(model, old_pks)`` (the
  source pks the ledger maps to that row: one for an Inserted row, possibly several for a
  row that Existing rows were mapped to); rows the ledger does not know (side effects)
  are identified by their content;
* every foreign-key column (the registry's, and the known references of the side-effect
  tables) becomes the identity of the row it points at;
* the chunk records' pk maps point at identities, and their min/max inserted pks are
  replaced by whether they agree with their map.

Columns that are random or time-dependent by design (sanitised passwords, validation and
lost-password hashes, dates set to now(), chunk dates and import uuids) are left out; in
non-Global imports more is random (see ``NON_GLOBAL_VOLATILE``), so prefer Global dumps.
Rows of each table are sorted. Two imports of the same export that agree row for row
give equal dumps, whatever ids they drew.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from relocate.schemas.registry import Registry

Identity = tuple[Any, ...]

#: Side-effect tables and their references to imported rows: column -> target model.
SIDE_EFFECT_REFERENCES: dict[str, dict[str, str]] = {
    "sentry_email": {},
    "sentry_useremail": {"user_id": "sentry.user"},
    "sentry_lostpasswordhash": {"user_id": "sentry.user"},
    "sentry_organizationslugreservation": {
        "organization_id": "sentry.organization",
        "user_id": "sentry.user",
    },
    "sentry_organizationmapping": {"organization_id": "sentry.organization"},
    "sentry_organizationmembermapping": {
        "organization_id": "sentry.organization",
        "organizationmember_id": "sentry.organizationmember",
        "user_id": "sentry.user",
        "inviter_id": "sentry.user",
    },
}

CHUNK_TABLES = (
    "sentry_regionimportchunk",
    "sentry_controlimportchunk",
    "sentry_controlimportchunkreplica",
)

#: Columns left out of every row: random or set to now() whatever the scope.
VOLATILE: dict[str, frozenset[str]] = {
    "sentry_lostpasswordhash": frozenset({"hash", "date_added"}),
    "sentry_organizationslugreservation": frozenset({"date_added"}),
    # Issue 13: Sentry gives every monitor a new guid and every detection uuid a new one,
    # and re-creates query subscriptions (date_updated now).
    "sentry_monitor": frozenset({"guid"}),
    "sentry_incident": frozenset({"detection_uuid"}),
    "sentry_querysubscription": frozenset({"date_updated"}),
    **{t: frozenset({"date_added", "date_updated", "import_uuid"}) for t in CHUNK_TABLES},
}

#: Columns left out of rows created as side effects (recorded in relocate_side_effect):
#: the Email a new user brings keeps its now() date when exported Emails map to it
#: (Existing). The primary UserEmail's random hash and now() date are overwritten by the
#: exported UserEmail of the same address: only left out when no ledger row maps to it.
SIDE_EFFECT_VOLATILE: dict[str, frozenset[str]] = {
    "sentry_email": frozenset({"date_added"}),
}
UNMAPPED_SIDE_EFFECT_VOLATILE: dict[str, frozenset[str]] = {
    "sentry_useremail": frozenset({"validation_hash", "date_hash_added"}),
    # A new project's receiver-written options (a random relay-rev, now()) keep those
    # values when no exported option of their key is saved onto them.
    "sentry_projectoptions": frozenset({"value"}),
}

#: Columns of unclaimed users (any scope) that sanitisation sets at random / to now().
UNCLAIMED_USER_VOLATILE = frozenset({"password", "last_password_change"})

#: What is random or now() when the import is not Global: sanitisation (passwords,
#: verification hashes, IP dates), and the tokens, keys and guids that are regenerated
#: when they collide with rows already in the target (a Global import wipes it first).
#: Organization slugs renamed on a collision get a random suffix too: pass them in
#: ``extra_volatile`` when that matters.
NON_GLOBAL_VOLATILE: dict[str, frozenset[str]] = {
    "auth_user": UNCLAIMED_USER_VOLATILE,
    "sentry_useremail": frozenset({"validation_hash", "date_hash_added"}),
    "sentry_userip": frozenset({"first_seen", "last_seen"}),
    "sentry_organizationmember": frozenset({"token"}),
    "sentry_orgauthtoken": frozenset({"token_hashed", "token_last_characters"}),
    "sentry_projectkey": frozenset({"public_key", "secret_key"}),
    "sentry_apitoken": frozenset(
        {"token", "hashed_token", "refresh_token", "hashed_refresh_token", "token_last_characters"}
    ),
    "sentry_apikey": frozenset({"key"}),
    "sentry_apiapplication": frozenset({"client_id"}),
    "sentry_monitor": frozenset({"guid"}),
    "sentry_servicehook": frozenset({"guid"}),
    "sentry_sentryappcomponent": frozenset({"uuid"}),
}


def canonical(value: Any) -> Any:
    """A hashable, order-independent, JSON-like form of one database value."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time, dt.timedelta, decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, tuple):
        return tuple(canonical(v) for v in value)
    return value


def sort_key(row: Iterable[Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def _tables(conn: psycopg.Connection) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
    }


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s "
            "ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    ]


class Identities:
    """(model, new pk) -> (model, sorted old pks), from the ledger of every import."""

    def __init__(self, ledger: Iterable[tuple[str, int, int]]) -> None:
        olds: dict[tuple[str, int], set[int]] = defaultdict(set)
        for model, old_pk, new_pk in ledger:
            olds[(model, new_pk)].add(old_pk)
        self._ids = {key: (key[0], tuple(sorted(v))) for key, v in olds.items()}

    def of(self, model: str, new_pk: Any) -> Identity | None:
        return self._ids.get((model, new_pk))

    def ref(self, model: str, new_pk: Any) -> Any:
        """The identity a reference points at; unmapped values stay visible as such."""
        if new_pk is None:
            return None
        found = self.of(model, new_pk)
        return found if found is not None else ("unmapped", model, new_pk)


def canonical_dump(
    dsn: str, extra_volatile: Mapping[str, Iterable[str]] | None = None
) -> dict[str, list[tuple]]:
    """Every table of the import's target in canonical form: table -> sorted rows.

    Besides the tables, ``relocate_pk_map`` holds the ledger as (model, old_pk, kind,
    identity of new_pk, slug, ordinal, stage, previous), ``relocate_side_effect`` the
    side-effect records as (table, canonical row), ``relocate_report`` what was skipped,
    dropped or failed (whatever run reported it, once) and ``relocate_import`` (scope,
    status, flags) per import. ``extra_volatile`` leaves out more columns (table ->
    columns)."""
    registry = Registry.load()
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return _dump(conn, registry, extra_volatile or {})


def _dump(
    conn: psycopg.Connection, registry: Registry, extra: Mapping[str, Iterable[str]]
) -> dict[str, list[tuple]]:
    tables = _tables(conn)
    ledger = conn.execute(
        "SELECT model, old_pk, new_pk, kind, slug, ordinal, stage, previous FROM relocate_pk_map"
    ).fetchall()
    ids = Identities((m, o, n) for m, o, n, *_ in ledger)
    side_effects = conn.execute("SELECT table_name, row_id FROM relocate_side_effect").fetchall()
    side_ids: dict[str, set[int]] = defaultdict(set)
    for table, row_id in side_effects:
        side_ids[table].add(row_id)
    scopes = {r[0] for r in conn.execute("SELECT scope FROM relocate_import").fetchall()}
    volatile: dict[str, set[str]] = defaultdict(set)
    for table, cols in VOLATILE.items():
        volatile[table] |= cols
    if scopes - {"global"}:
        for table, cols in NON_GLOBAL_VOLATILE.items():
            volatile[table] |= cols
    for table, cols in extra.items():
        volatile[table] |= set(cols)

    # table -> (model of its ids or None, column -> target model)
    layout: dict[str, tuple[str | None, dict[str, str]]] = {}
    for model in registry.models:
        refs = {fk.column: fk.target for fk in model.foreign_keys if not fk.excluded}
        layout[model.table] = (model.name, refs)
    for table, refs in SIDE_EFFECT_REFERENCES.items():
        model_name = layout.get(table, (None, {}))[0]
        merged = dict(layout.get(table, (None, {}))[1])
        merged.update(refs)
        layout[table] = (model_name, merged)

    dump: dict[str, list[tuple]] = {}
    by_id: dict[str, dict[int, tuple]] = {}
    for table, (model_name, refs) in sorted(layout.items()):
        if table not in tables:
            continue
        columns = [c for c in _columns(conn, table) if c != "id"]
        query = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, ["id", *columns])), sql.Identifier(table)
        )
        rows: dict[int, tuple] = {}
        for raw in conn.execute(query).fetchall():
            row_id, values = raw[0], dict(zip(columns, raw[1:]))
            identity = ids.of(model_name, row_id) if model_name else None
            skip = set(volatile.get(table, ()))
            if row_id in side_ids[table]:
                skip |= SIDE_EFFECT_VOLATILE.get(table, frozenset())
                if identity is None:
                    skip |= UNMAPPED_SIDE_EFFECT_VOLATILE.get(table, frozenset())
            if table == "auth_user" and values.get("is_unclaimed"):
                skip |= UNCLAIMED_USER_VOLATILE
            out = []
            for column in columns:
                if column in skip:
                    continue
                value = values[column]
                if column in refs:
                    value = ids.ref(refs[column], value)
                out.append((column, canonical(value)))
            rows[row_id] = (identity, *out)
        by_id[table] = rows
        dump[table] = sorted(rows.values(), key=sort_key)

    for table in CHUNK_TABLES:
        if table in tables:
            dump[table] = _chunks(conn, table, ids, volatile.get(table, set()))

    dump["relocate_pk_map"] = sorted(
        (
            (model, old_pk, kind, ids.ref(model, new_pk), slug, ordinal, stage, canonical(prev))
            for model, old_pk, new_pk, kind, slug, ordinal, stage, prev in ledger
        ),
        key=sort_key,
    )
    dump["relocate_side_effect"] = sorted(
        (
            (table, by_id.get(table, {}).get(row_id, ("missing row",)))
            for table, row_id in side_effects
        ),
        key=sort_key,
    )
    dump["relocate_report"] = sorted(
        conn.execute(
            "SELECT DISTINCT model, ordinal, source_pk, action, reason, finding_kind "
            "FROM relocate_report"
        ).fetchall(),
        key=sort_key,
    )
    dump["relocate_import"] = sorted(
        (
            (scope, status, canonical(flags))
            for scope, status, flags in conn.execute(
                "SELECT scope, status, flags FROM relocate_import"
            ).fetchall()
        ),
        key=sort_key,
    )
    return dump


def _chunks(conn: psycopg.Connection, table: str, ids: Identities, skip: set[str]) -> list[tuple]:
    """Chunk records with their maps pointing at identities.

    ``min_inserted_pk`` and ``max_inserted_pk`` are new pks whose row depends on the
    order ids were drawn in; they are replaced by whether they agree with the map.
    """
    columns = [c for c in _columns(conn, table) if c != "id" and c not in skip]
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table)
    )
    out = []
    for raw in conn.execute(query).fetchall():
        values = dict(zip(columns, raw))
        model = values.get("model")
        inserted = values.get("inserted_map") or {}
        row = []
        for column in columns:
            value = values[column]
            if column in ("inserted_map", "existing_map", "overwrite_map"):
                value = {k: ids.ref(model, v) for k, v in (value or {}).items()}
            elif column == "min_inserted_pk":
                value = ("agrees", value is None if not inserted else value in inserted.values())
            elif column == "max_inserted_pk":
                value = ("agrees", value == (max(inserted.values()) if inserted else None))
            row.append((column, canonical(value)))
        out.append(tuple(row))
    return sorted(out, key=sort_key)


def diff(left: dict[str, list[tuple]], right: dict[str, list[tuple]], limit: int = 5) -> str:
    """A short human-readable difference between two dumps ('' when equal)."""
    lines = []
    for table in sorted(set(left) | set(right)):
        a, b = left.get(table, []), right.get(table, [])
        if a == b:
            continue
        ka = {sort_key(r) for r in a}
        kb = {sort_key(r) for r in b}
        only_a = sorted(ka - kb)[:limit]
        only_b = sorted(kb - ka)[:limit]
        lines.append(f"{table}: {len(a)} vs {len(b)} rows")
        lines += [f"  - {r[:400]}" for r in only_a]
        lines += [f"  + {r[:400]}" for r in only_b]
    return "\n".join(lines)


@dataclass
class Tally:
    """How a run's dump differs from the clean one, row by row."""

    lost: int = 0
    doubled: int = 0
    changed: int = 0

    def __bool__(self) -> bool:
        return bool(self.lost or self.doubled or self.changed)


def _key(table: str, row: tuple) -> str:
    """What identifies a row across runs: its ledger identity, else its whole content."""
    if table == "relocate_pk_map":
        return sort_key(row[:2])
    head = row[0] if row else None
    is_identity = isinstance(head, tuple) and len(head) == 2 and isinstance(head[1], tuple)
    if table != "relocate_side_effect" and is_identity:
        return sort_key(head)
    return sort_key(row)


def compare(clean: dict[str, list[tuple]], run: dict[str, list[tuple]]) -> Tally:
    """Rows of ``clean`` missing from ``run`` (lost), extra in ``run`` (doubled), and rows
    present in both with different content (changed)."""
    tally = Tally()
    for table in set(clean) | set(run):
        if table == "relocate_import":
            continue
        a = Counter(_key(table, r) for r in clean.get(table, []))
        b = Counter(_key(table, r) for r in run.get(table, []))
        tally.lost += sum((a - b).values())
        tally.doubled += sum((b - a).values())
        same = a & b
        rows_a = Counter(sort_key(r) for r in clean.get(table, []) if _key(table, r) in same)
        rows_b = Counter(sort_key(r) for r in run.get(table, []) if _key(table, r) in same)
        tally.changed += sum((rows_a - rows_b).values())
    return tally


def integrity(dsn: str) -> dict[str, list[Any]]:
    """What must never happen, whatever the run: each entry lists offending examples.

    * ``ledger_without_row``: a ledger entry whose new pk is not in its table (lost row);
    * ``claimed_twice``: two Inserted ledger entries of one model with the same new pk;
    * ``sequence_behind``: tables whose id sequence would hand out an id in use.
    """
    registry = Registry.load()
    found: dict[str, list[Any]] = defaultdict(list)
    with psycopg.connect(dsn) as conn:
        tables = _tables(conn)
        models = {m.name: m.table for m in registry.models if m.table in tables}
        for model, table in models.items():
            rows = conn.execute(
                sql.SQL(
                    "SELECT m.old_pk FROM relocate_pk_map m WHERE m.model = %s AND NOT EXISTS "
                    "(SELECT 1 FROM {} t WHERE t.id = m.new_pk) LIMIT 5"
                ).format(sql.Identifier(table)),
                (model,),
            ).fetchall()
            found["ledger_without_row"] += [(model, r[0]) for r in rows]
        found["claimed_twice"] += conn.execute(
            "SELECT model, new_pk, count(*) FROM relocate_pk_map WHERE kind = 'Inserted' "
            "GROUP BY model, new_pk HAVING count(*) > 1 LIMIT 5"
        ).fetchall()
        for table in sorted(set(models.values()) | (set(SIDE_EFFECT_REFERENCES) & tables)):
            seq = conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()[0]
            if seq:
                top, last, called = conn.execute(
                    sql.SQL(
                        "SELECT (SELECT max(id) FROM {t}), last_value, is_called FROM {s}"
                    ).format(t=sql.Identifier(table), s=sql.SQL(seq))
                ).fetchone()
                if top is not None and (last < top or (last == top and not called)):
                    found["sequence_behind"].append((table, top, last))
    return {k: v for k, v in found.items() if v}


def natural_duplicates(dsn: str) -> dict[str, int]:
    """Tables with rows equal in everything but their id: table -> groups of such rows.

    An export may hold such rows (two identical Snuba queries); compare with a clean run.
    """
    registry = Registry.load()
    found: dict[str, int] = {}
    with psycopg.connect(dsn) as conn:
        tables = _tables(conn)
        names = {m.table for m in registry.models} | set(SIDE_EFFECT_REFERENCES)
        for table in sorted(names & tables):
            n = conn.execute(
                sql.SQL(
                    "SELECT count(*) FROM (SELECT to_jsonb(t) - 'id' AS k FROM {} t "
                    "GROUP BY 1 HAVING count(*) > 1) d"
                ).format(sql.Identifier(table))
            ).fetchone()[0]
            if n:
                found[table] = n
    return found
