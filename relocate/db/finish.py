"""After the last stage: sequences, Sentry's import-chunk records, and the summary.

Plain functions over a psycopg connection; each is idempotent, so a resumed import can
run them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from relocate.db.handler import index_lookup
from relocate.db.imports import fail_if_wiped
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


def write_chunks(conn: psycopg.Connection, settings: ImportSettings, registry: Registry) -> int:
    """Writes Sentry's import-chunk records of this import from the ledger.

    Region models go to ``sentry_regionimportchunk``; control models to
    ``sentry_controlimportchunk`` plus an identical ``sentry_controlimportchunkreplica``.
    Ordinals count written rows of a model (1-based, in file order), as Sentry's do.
    """
    control = [m.name for m in registry.models if m.is_control]
    total = 0
    control_written = False  # the replica copies the control chunks once they are written
    with conn.transaction(), conn.cursor() as cur:
        for table, silo_filter in (
            ("sentry_regionimportchunk", "NOT"),
            ("sentry_controlimportchunk", ""),
            ("sentry_controlimportchunkreplica", ""),
        ):
            # A target without Sentry's chunk tables imports without chunk records, as
            # it imports without any other table it lacks.
            if cur.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
                continue
            if table == "sentry_controlimportchunkreplica" and control_written:
                # The same rows again: copied, not computed twice (a sort of the import's
                # control rows in the ledger; 1.8 s at 1M rows).
                cur.execute(
                    f"INSERT INTO sentry_controlimportchunkreplica ({_CHUNK_COLUMNS}) "
                    f"SELECT {_CHUNK_COLUMNS} FROM sentry_controlimportchunk "
                    "WHERE import_uuid = %s ON CONFLICT DO NOTHING",
                    (settings.import_uuid,),
                )
                total += cur.rowcount
                continue
            control_written = table == "sentry_controlimportchunk"
            query = sql.SQL(
                """
                WITH written AS (
                    SELECT model, old_pk, new_pk, kind, slug,
                           row_number() OVER (PARTITION BY model ORDER BY ordinal) AS n
                    FROM relocate_pk_map
                    WHERE import_uuid = %(u)s AND {silo} (model = ANY(%(control)s))
                ), chunks AS (
                    SELECT model, (n - 1) / %(size)s AS chunk, min(n) AS min_ordinal,
                           max(n) AS max_ordinal,
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
                    FROM written GROUP BY model, chunk
                )
                INSERT INTO {table} (date_added, date_updated, import_uuid, model, min_ordinal,
                    max_ordinal, min_source_pk, max_source_pk, min_inserted_pk,
                    max_inserted_pk, inserted_map, existing_map, overwrite_map,
                    inserted_identifiers)
                SELECT now(), now(), %(u)s, model, min_ordinal, max_ordinal, min_source_pk,
                       max_source_pk, min_inserted_pk, max_inserted_pk, inserted_map,
                       existing_map, overwrite_map, inserted_identifiers
                FROM chunks
                ON CONFLICT DO NOTHING
                """
            ).format(silo=sql.SQL(silo_filter), table=sql.Identifier(table))
            cur.execute(query, {"u": settings.import_uuid, "control": control, "size": CHUNK_SIZE})
            total += cur.rowcount
    return total


def finish_import(conn: psycopg.Connection, settings: ImportSettings, registry: Registry) -> None:
    """Everything that runs once after the last stage wrote its rows.

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
    write_chunks(conn, settings, registry)


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
