"""What an import did, read back from its ledger for ``relocate plan``.

The plan runs the real import on a scratch copy of the target (``relocate.db.scratch``);
this module reads the outcome the ledger and the target tables of that copy hold, section
by section, as streams of JSON-able rows, so that neither the plan file nor the terminal
listing holds a large import in memory. Secret values are never read: a regenerated key or
token is named by its model, source pk and column.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

import psycopg
from psycopg import sql

from relocate.db.finish import ImportSummary
from relocate.db.handler import EXISTING, OVERWRITE
from relocate.logic.rules import build_handlers
from relocate.logic.rules.config import OverwritableConfigHandler
from relocate.schemas.registry import Registry

#: The sections of a plan listed row by row, in the order they are printed.
SECTIONS = ("renamed", "merged", "configs", "regenerated", "dropped")

#: The per-model counts, in the order the summary prints them.
COUNTS = ("read", "inserted", "existing", "overwritten", "skipped", "dropped")


def config_models() -> dict[str, tuple[str, ...]]:
    """Config models whose rows are kept (Existing) or overwritten, with their unique key."""
    return {
        model: handler.unique
        for model, handler in build_handlers().items()
        if isinstance(handler, OverwritableConfigHandler)
    }


def _changes(cur: psycopg.Cursor, import_uuid: str, action: str) -> Iterator[dict[str, Any]]:
    rows = cur.execute(
        "SELECT m.model, m.old_pk, m.new_pk, c.key, c.value FROM relocate_pk_map m, "
        "jsonb_each(m.changes) AS c(key, value) WHERE m.import_uuid = %s "
        "AND m.changes IS NOT NULL AND c.value ->> 'action' = %s "
        "ORDER BY m.model, m.ordinal, c.key",
        (import_uuid, action),
    )
    for model, old_pk, new_pk, column, change in rows:
        entry = {"model": model, "source_pk": old_pk, "target_id": new_pk, "field": column}
        entry.update((k, v) for k, v in change.items() if k != "action")
        yield entry


def _merged(cur: psycopg.Cursor, import_uuid: str) -> Iterator[dict[str, Any]]:
    rows = cur.execute(
        "SELECT m.old_pk, m.new_pk, u.username FROM relocate_pk_map m "
        "LEFT JOIN auth_user u ON u.id = m.new_pk WHERE m.import_uuid = %s "
        "AND m.model = 'sentry.user' AND m.kind = %s ORDER BY m.ordinal",
        (import_uuid, EXISTING),
    )
    for old_pk, new_pk, username in rows:
        yield {"source_pk": old_pk, "into_user_id": new_pk, "into_username": username}


def _configs(
    conn: psycopg.Connection, registry: Registry, import_uuid: str
) -> Iterator[dict[str, Any]]:
    for model, unique in sorted(config_models().items()):
        info = registry.get(model)
        if (
            info is None
            or conn.execute("SELECT to_regclass(%s)", (info.table,)).fetchone()[0] is None
        ):
            continue
        query = sql.SQL(
            "SELECT m.old_pk, m.new_pk, m.kind, {cols} FROM relocate_pk_map m "
            "LEFT JOIN {table} t ON t.id = m.new_pk WHERE m.import_uuid = %s "
            "AND m.model = %s AND m.kind IN (%s, %s) ORDER BY m.ordinal"
        ).format(
            cols=sql.SQL(", ").join(
                sql.SQL("t.{}::text").format(sql.Identifier(c)) for c in unique
            ),
            table=sql.Identifier(info.table),
        )
        with conn.cursor() as cur:
            for old_pk, new_pk, kind, *key in cur.execute(
                query, (import_uuid, model, EXISTING, OVERWRITE)
            ):
                yield {
                    "model": model,
                    "source_pk": old_pk,
                    "target_id": new_pk,
                    "outcome": "overwritten" if kind == OVERWRITE else "kept",
                    "key": dict(zip(unique, key)),
                }


def _dropped(summary: ImportSummary) -> Iterator[dict[str, Any]]:
    for entry in summary.report:
        if entry["action"] in ("skipped", "dropped"):
            yield dict(entry)


def section(
    conn: psycopg.Connection,
    registry: Registry,
    summary: ImportSummary,
    import_uuid: str,
    name: str,
) -> Iterator[dict[str, Any]]:
    """The rows of one section of the plan (``SECTIONS``), streamed from the scratch.

    ``renamed``: usernames and organization slugs given another value, with the old one
    and what it collided with. ``merged``: export users merged into existing users
    (``--merge-users``). ``configs``: config rows kept or overwritten
    (``--overwrite-configs``), by their unique key. ``regenerated``: keys, tokens and guids
    given new values (the column named, never its value). ``dropped``: rows skipped or
    dropped, with the reason.
    """
    if name == "dropped":
        yield from _dropped(summary)
    elif name == "configs":
        yield from _configs(conn, registry, import_uuid)
    else:
        with conn.cursor(name=f"plan_{name}") as cur:  # server-side: streamed
            if name == "merged":
                yield from _merged(cur, import_uuid)
            else:
                yield from _changes(cur, import_uuid, name)
    conn.commit()


def counts(summary: ImportSummary) -> dict[str, dict[str, int]]:
    """Per model, what the import would do (``COUNTS``)."""
    return {
        model: {c: getattr(m, c) for c in COUNTS} for model, m in sorted(summary.models.items())
    }


def write_plan(
    f: TextIO,
    conn: psycopg.Connection,
    registry: Registry,
    summary: ImportSummary,
    *,
    scope: str,
    import_uuid: str,
) -> None:
    """Writes the plan as one JSON object, row by row (memory does not grow with it).

    Keys: ``scope``, ``import_uuid``, ``findings`` (as ``--findings-file`` has them),
    ``models`` (per model counts), ``total``, then one list per section (``SECTIONS``).
    """
    total = summary.total
    head = {
        "scope": scope,
        "import_uuid": import_uuid,
        "findings": summary.findings,
        "models": counts(summary),
        "total": {c: getattr(total, c) for c in COUNTS},
    }
    f.write(json.dumps(head, sort_keys=False, ensure_ascii=True)[:-1])
    for name in SECTIONS:
        f.write(f', "{name}": [')
        for i, entry in enumerate(section(conn, registry, summary, import_uuid, name)):
            f.write(("\n  " if i == 0 else ",\n  ") + json.dumps(entry, ensure_ascii=True))
        f.write("]")
    f.write("}\n")
