"""After the last stage: sequences, Sentry's import-chunk records, and the summary.

Plain functions over a psycopg connection; each is idempotent, so a resumed import can
run them again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from relocate.db.handler import index_lookup
from relocate.db.imports import fail_if_wiped
from relocate.db.sql_literals import model_array
from relocate.logic.settings import ImportSettings
from relocate.schemas.registry import Registry

#: Rows per chunk record (Sentry writes one per batch of 20; any size reads the same).
CHUNK_SIZE = 1000


def set_sequences(conn: psycopg.Connection, tables: list[str]) -> None:
    """Moves each table's id sequence past its highest id."""
    with conn.transaction(), conn.cursor() as cur:
        for table in tables:
            seq = cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()
            if not seq or not seq[0]:
                continue
            cur.execute(
                sql.SQL(
                    "SELECT setval(%s, GREATEST((SELECT COALESCE(max(id), 0) FROM {}), "
                    "(SELECT last_value FROM {}), 1))"
                ).format(sql.Identifier(table), sql.SQL(seq[0])),
                (seq[0],),
            )


def import_keys(cur: psycopg.Cursor, table: str, column: str, import_uuid: str) -> set[str]:
    """The distinct values of ``column`` among the import's rows of ``table``, one of
    relocate's tables whose primary key starts ``(import_uuid, column)``: one index probe
    per value (a skip scan of the key), where ``SELECT DISTINCT`` read every row of the
    import (0.4 s per million ledger rows). ``table`` and ``column`` come from code."""
    rows = index_lookup(
        cur,
        sql.SQL(
            """
            WITH RECURSIVE found(v) AS (
                (SELECT {c} FROM {t} WHERE import_uuid = %(u)s ORDER BY {c} LIMIT 1)
                UNION ALL
                SELECT (SELECT x.{c} FROM {t} x
                        WHERE x.import_uuid = %(u)s AND x.{c} > found.v
                        ORDER BY x.{c} LIMIT 1)
                FROM found WHERE found.v IS NOT NULL
            )
            SELECT v FROM found WHERE v IS NOT NULL
            """
        ).format(t=sql.Identifier(table), c=sql.Identifier(column)),
        {"u": import_uuid},
    )
    return {r[0] for r in rows}


def ledger_models(cur: psycopg.Cursor, import_uuid: str) -> set[str]:
    """The models this import has ledger rows of (``import_keys``)."""
    return import_keys(cur, "relocate_pk_map", "model", import_uuid)


def record_slugs(
    conn: psycopg.Connection, settings: ImportSettings, registry: Registry, models: set[str]
) -> None:
    """Records in the ledger the slug of every Inserted row of a model that has one;
    ``models`` are the import's models in the ledger (``ledger_models``).

    Sentry's ``import_by_model`` keeps ``getattr(instance, "slug", None)`` of every written
    instance, and a chunk's ``inserted_identifiers`` lists those of its Inserted rows:
    projects, teams, monitors... not only organizations (whose slug the rules record).
    """
    with conn.transaction(), conn.cursor() as cur:
        slugged = {
            r[0]
            for r in cur.execute(
                "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE a.attname = 'slug' AND NOT a.attisdropped "
                "AND c.relnamespace = (SELECT oid FROM pg_namespace "
                "WHERE nspname = current_schema())"
            )
        }
        for model in sorted(models):
            info = registry.get(model)
            if info is None or info.table not in slugged:
                continue
            cur.execute(
                sql.SQL(
                    "UPDATE relocate_pk_map m SET slug = t.slug FROM {} t "
                    "WHERE m.import_uuid = %s AND m.model = %s AND m.kind = 'Inserted' "
                    "AND m.slug IS NULL AND t.id = m.new_pk AND t.slug IS NOT NULL"
                ).format(sql.Identifier(info.table)),
                (settings.import_uuid, model),
            )


#: The columns a chunk record is written with (the id comes from the table's sequence).
_CHUNK_COLUMNS = (
    "date_added, date_updated, import_uuid, model, min_ordinal, max_ordinal, "
    "min_source_pk, max_source_pk, min_inserted_pk, max_inserted_pk, inserted_map, "
    "existing_map, overwrite_map, inserted_identifiers"
)


#: Sentry's chunk tables: region models', control models', and the region's copy of the
#: control chunks.
REGION_CHUNKS = "sentry_regionimportchunk"
CONTROL_CHUNKS = "sentry_controlimportchunk"
CONTROL_CHUNK_REPLICA = "sentry_controlimportchunkreplica"

_CHUNKS_OF_MODEL = """
    WITH written AS (
        SELECT old_pk, new_pk, kind, slug, row_number() OVER (ORDER BY ordinal) AS n
        FROM relocate_pk_map
        WHERE import_uuid = %(u)s AND model = %(m)s
    ), chunks AS (
        SELECT (n - 1) / %(size)s AS chunk, min(n) AS min_ordinal, max(n) AS max_ordinal,
               (array_agg(old_pk ORDER BY n))[1] AS min_source_pk,
               max(old_pk) AS max_source_pk,
               (array_agg(new_pk ORDER BY n) FILTER (WHERE kind = 'Inserted'))[1]
                   AS min_inserted_pk,
               max(new_pk) FILTER (WHERE kind = 'Inserted') AS max_inserted_pk,
               COALESCE(jsonb_object_agg(old_pk::text, new_pk)
                   FILTER (WHERE kind = 'Inserted'), '{{}}') AS inserted_map,
               COALESCE(jsonb_object_agg(old_pk::text, new_pk)
                   FILTER (WHERE kind = 'Existing'), '{{}}') AS existing_map,
               COALESCE(jsonb_object_agg(old_pk::text, new_pk)
                   FILTER (WHERE kind = 'Overwrite'), '{{}}') AS overwrite_map,
               COALESCE(jsonb_object_agg(old_pk::text, slug)
                   FILTER (WHERE kind = 'Inserted' AND slug IS NOT NULL), '{{}}')
                   AS inserted_identifiers
        FROM written GROUP BY chunk
    )
    INSERT INTO {table} (id, {columns})
    SELECT COALESCE((%(ids)s::bigint[])[chunk + 1], nextval(%(seq)s::regclass)), now(), now(),
           %(u)s, %(m)s, min_ordinal, max_ordinal, min_source_pk, max_source_pk,
           min_inserted_pk, max_inserted_pk, inserted_map, existing_map, overwrite_map,
           inserted_identifiers
    FROM chunks
    ON CONFLICT DO NOTHING
"""


def write_chunks(
    conns: Sequence[psycopg.Connection],
    settings: ImportSettings,
    registry: Registry,
    models: set[str],
) -> int:
    """Writes Sentry's import-chunk records of this import from the ledger; returns how
    many it wrote.

    Region models go to ``sentry_regionimportchunk``; control models to
    ``sentry_controlimportchunk`` plus an identical ``sentry_controlimportchunkreplica``.
    Ordinals count written rows of a model (1-based, in file order), as Sentry's do.
    One statement per model, in its own transaction, largest models first, shared out
    over ``conns`` (each on a thread of its own): the server sorts and aggregates a
    model's ledger rows on one core, and nothing else runs while the import finishes
    (3.7 s on one connection at 1M rows). The records' ids are drawn first, in table,
    model and chunk order, so that an import writes the same ids whichever thread wrote
    what. A model's chunks are written whole or not at all; what an interrupted run wrote
    is skipped when the next writes them again.

    Args:
        conns: open connections (not in autocommit) to the target.
        settings: the import's settings.
        registry: the model registry.
        models: the import's models in the ledger (``ledger_models``).
    """
    control = {m.name for m in registry.models if m.is_control}
    ordered = sorted(models)
    first = conns[0]
    work: list[tuple[str, str]] = []  # (model, table), in id order
    ids: dict[str, list[int]] = {}
    with first.transaction(), first.cursor() as cur:
        # A target without Sentry's chunk tables imports without chunk records, as it
        # imports without any other table it lacks.
        present = {
            table
            for table in (REGION_CHUNKS, CONTROL_CHUNKS, CONTROL_CHUNK_REPLICA)
            if cur.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None
        }
        sequences = {
            table: cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()[0]
            for table in present
        }
        chunks = chunk_counts(cur, settings.import_uuid, ordered)
        # The control chunks, or (a target without them) their replica, are computed.
        control_table = next(
            (t for t in (CONTROL_CHUNKS, CONTROL_CHUNK_REPLICA) if t in present), None
        )
        for table in (REGION_CHUNKS, control_table):
            mine = [m for m in ordered if (m in control) == (table == control_table)]
            if table is None or table not in present or not mine:
                continue
            drawn = [
                r[0]
                for r in cur.execute(
                    "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
                    (sequences[table], sum(chunks[m] for m in mine)),
                )
            ]
            for model in mine:
                ids[model], drawn = drawn[: chunks[model]], drawn[chunks[model] :]
                work.append((model, table))

    def write_model(conn: psycopg.Connection, model: str, table: str) -> int:
        query = sql.SQL(_CHUNKS_OF_MODEL).format(
            table=sql.Identifier(table), columns=sql.SQL(_CHUNK_COLUMNS)
        )
        params = {
            "u": settings.import_uuid,
            "m": model,
            "size": CHUNK_SIZE,
            "ids": ids[model],
            "seq": sequences[table],  # only if the ledger grew since the ids were drawn
        }
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(query, params)
            return cur.rowcount

    largest_first = sorted(work, key=lambda w: -len(ids[w[0]]))
    total = share_out(conns, largest_first, write_model)
    if CONTROL_CHUNKS in present and CONTROL_CHUNK_REPLICA in present:
        # The same rows again: copied, not computed twice (a sort of the import's control
        # rows in the ledger; 1.8 s at 1M rows).
        with first.transaction(), first.cursor() as cur:
            cur.execute(
                f"INSERT INTO {CONTROL_CHUNK_REPLICA} ({_CHUNK_COLUMNS}) "
                f"SELECT {_CHUNK_COLUMNS} FROM {CONTROL_CHUNKS} "
                "WHERE import_uuid = %s ORDER BY id ON CONFLICT DO NOTHING",
                (settings.import_uuid,),
            )
            total += cur.rowcount
    return total


def chunk_counts(cur: psycopg.Cursor, import_uuid: str, models: list[str]) -> dict[str, int]:
    """model -> how many chunk records its rows in the ledger make (one index-only count
    per model)."""
    rows = cur.execute(
        """
        SELECT m, (SELECT count(*) FROM relocate_pk_map
                   WHERE import_uuid = %s AND model = m)
        FROM unnest(%s::text[]) AS m
        """,
        (import_uuid, model_array(models)),
    ).fetchall()
    return {model: -(-count // CHUNK_SIZE) for model, count in rows}


def share_out(
    conns: Sequence[psycopg.Connection],
    work: Sequence[tuple[str, str]],
    do: Callable[[psycopg.Connection, str, str], int],
) -> int:
    """Runs ``do(conn, *item)`` for every item of ``work``, in order, on as many threads
    as there are connections, each thread taking the next item when its last is done;
    returns the sum of what ``do`` returned. The first error is raised once every thread
    has stopped (each stops at its first error)."""
    queue = deque(work)

    def drain(conn: psycopg.Connection) -> int:
        done = 0
        while True:
            try:
                item = queue.popleft()  # atomic: threads never take the same item
            except IndexError:
                return done
            done += do(conn, *item)

    if len(conns) == 1:
        return drain(conns[0])
    with ThreadPoolExecutor(max_workers=len(conns)) as pool:
        futures = [pool.submit(drain, conn) for conn in conns]
    return sum(f.result() for f in futures)


def finish_import(
    conn: psycopg.Connection,
    settings: ImportSettings,
    registry: Registry,
    helpers: Sequence[psycopg.Connection] = (),
) -> None:
    """Everything that runs once after the last stage wrote its rows.

    Args:
        conn: an open connection (not in autocommit).
        settings: the import's settings.
        registry: the model registry.
        helpers: more connections, to write the chunk records side by side.

    Raises:
        ImportConflict: a Global wipe deleted rows of this import while it ran.
    """
    fail_if_wiped(conn, settings)
    with conn.cursor() as cur:
        models = ledger_models(cur, settings.import_uuid)
        # The tables the import wrote beside the export's rows are recorded for rollback.
        side_tables = sorted(
            import_keys(cur, "relocate_side_effect", "table_name", settings.import_uuid)
        )
    conn.commit()
    tables = [m.table for m in registry.models if m.name in models] + side_tables
    set_sequences(conn, tables)
    record_slugs(conn, settings, registry, models)
    write_chunks([conn, *helpers], settings, registry, models)


@dataclass
class ModelSummary:
    read: int = 0
    inserted: int = 0
    existing: int = 0
    overwritten: int = 0
    skipped: int = 0
    dropped: int = 0
    errors: int = 0


@dataclass
class ImportSummary:
    """What an import did, per model, read back from the ledger and the report."""

    models: dict[str, ModelSummary] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    report: list[dict[str, Any]] = field(default_factory=list)

    def model(self, name: str) -> ModelSummary:
        return self.models.setdefault(name, ModelSummary())

    @property
    def total(self) -> ModelSummary:
        total = ModelSummary()
        for m in self.models.values():
            for f in total.__dataclass_fields__:
                setattr(total, f, getattr(total, f) + getattr(m, f))
        return total


def read_summary(
    conn: psycopg.Connection, settings: ImportSettings, read_counts: dict[str, int] | None = None
) -> ImportSummary:
    """Collects the per-model counts, findings and report entries of this run."""
    summary = ImportSummary()
    with conn.cursor() as cur:
        for model, kind, n in cur.execute(
            "SELECT model, kind, count(*) FROM relocate_pk_map WHERE import_uuid = %s "
            "GROUP BY model, kind",
            (settings.import_uuid,),
        ):
            entry = summary.model(model)
            if kind == "Inserted":
                entry.inserted += n
            elif kind == "Existing":
                entry.existing += n
            else:
                entry.overwritten += n
        for model, ordinal, pk, action, reason, kind in cur.execute(
            "SELECT model, ordinal, source_pk, action, reason, finding_kind "
            "FROM relocate_report WHERE run_id = %s ORDER BY model, ordinal",
            (settings.run_id,),
        ):
            entry = summary.model(model)
            if action == "skipped":
                entry.skipped += 1
            elif action == "dropped":
                entry.dropped += 1
            else:
                entry.errors += 1
                summary.findings.append(
                    {
                        "finding": "RpcImportError",
                        "kind": kind or "Unknown",
                        "left_pk": int(pk)
                        if pk not in (None, "null") and pk.lstrip("-").isdigit()
                        else None,
                        "on": {"model": model, "ordinal": ordinal or None},
                        "reason": reason,
                        "right_pk": None,
                    }
                )
            summary.report.append(
                {
                    "model": model,
                    "ordinal": ordinal,
                    "source_pk": pk,
                    "action": action,
                    "reason": reason,
                }
            )
    conn.commit()
    for model, n in (read_counts or {}).items():
        summary.model(model).read = n
    return summary


def conclude_import(
    conn: psycopg.Connection, settings: ImportSettings, read_counts: dict[str, int] | None = None
) -> ImportSummary:
    """Reads what this run did and records the import's outcome (``done``/``failed``).

    Raises:
        ImportConflict: a Global wipe deleted rows of this import while it ran.
    """
    fail_if_wiped(conn, settings)
    summary = read_summary(conn, settings, read_counts)
    conn.execute(
        "UPDATE relocate_import SET status = %s, finished_at = now() WHERE import_uuid = %s",
        ("failed" if summary.findings else "done", settings.import_uuid),
    )
    conn.commit()
    return summary
