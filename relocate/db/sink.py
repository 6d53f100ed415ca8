"""The PostgreSQL sink: one transaction per batch of rows of one model.

Per batch (spec section 10.2, made per row, see DESIGN.md "Invariants"):

1. Resolve the batch's foreign keys against the pk-map ledger (one query).
2. Rewrite and normalise each row; a row whose required target was not imported is
   dropped and reported.
3. Claim the rows in the ledger (``insert_skipping_taken``) with ids drawn
   from the table's sequence. The ledger's primary key is the lock: a retried or
   concurrent attempt of the same rows claims nothing and writes nothing.
4. Write the claimed rows (COPY, or the model's own collision rules), then record in
   the ledger what became of each (Inserted, Existing, Overwrite) and commit.

Identifiers in SQL come from the registry and the target's catalog, never from the export.
What a model's rules see of a batch (rows, context, helpers) is ``relocate.db.handler``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from relocate.db.faults import FaultPlan, InjectedFault
from relocate.db.handler import (
    EXISTING,
    INSERTED,
    Finding,
    Handler,
    Item,
    LedgerEntry,
    RowDropped,
    RowFailed,
    SetBasedRules,
    WriteContext,
    index_lookup,
    insert_skipping_taken,
    ledger_refs,
    rewrite_foreign_keys,
    set_based_rules,
    update_found_rows,
)
from relocate.db.progress import record_batch
from relocate.db.set_write import (
    SetStatements,
    build_statements,
    copy_rows_of,
    replicated,
    write_set_based,
)
from relocate.db.sql_literals import bigint_array, model_array
from relocate.logic.convert import Converted, TableLayout
from relocate.logic.rules.replicas import write_replicas
from relocate.logic.settings import ImportSettings
from relocate.schemas.registry import ModelInfo, Registry

log = logging.getLogger("relocate.sink")


@dataclass
class BatchResult:
    """What one batch did; the pipeline counts these to know a stage is done."""

    model: str
    stage: int
    rows: int = 0
    inserted: int = 0
    existing: int = 0
    overwritten: int = 0
    dropped: int = 0
    skipped: int = 0
    already: int = 0
    errors: int = 0


def load_lookup(
    cur: psycopg.Cursor, import_uuid: str, refs: set[tuple[str, int]]
) -> dict[tuple[str, int], LedgerEntry]:
    if not refs:
        return {}
    models, pks = zip(*refs)
    rows = index_lookup(
        cur,
        """
        SELECT r.model, r.old_pk, m.new_pk, m.kind, m.slug
        FROM unnest(%s::text[], %s::bigint[]) AS r(model, old_pk)
        CROSS JOIN LATERAL (
            SELECT m.new_pk, m.kind, m.slug FROM relocate_pk_map m
            WHERE m.import_uuid = %s AND m.model = r.model AND m.old_pk = r.old_pk
            LIMIT 1
        ) AS m
        """,
        (model_array(models), bigint_array(pks), import_uuid),
    )
    entry = tuple.__new__  # LedgerEntry's own __new__ is Python code: 5x slower
    return {(m, o): entry(LedgerEntry, (n, k, s)) for m, o, n, k, s in rows}


def record_outcomes(
    cur: psycopg.Cursor, import_uuid: str, model: str, items: Sequence[Item]
) -> None:
    """Records in the ledger what became of claimed rows whose outcome is not the claim's
    (another kind or pk, a slug, overwritten values, noted changes): one statement.

    The rows travel as one JSON array, each found by an index probe
    (``update_found_rows``). One pipelined UPDATE per row took 25 ms per 1,000 rows on a
    1M-row ledger, this 20 ms, with no parameter tuple built per row in Python.
    """
    rows = json.dumps(
        [
            {
                "old_pk": i.old_pk,
                "new_pk": i.new_pk,
                "kind": i.kind,
                "slug": i.slug,
                "previous": i.previous,
                "changes": i.changes or None,
            }
            for i in items
        ]
    )
    update_found_rows(
        cur,
        "relocate_pk_map",
        sql.SQL(
            "jsonb_to_recordset(%s::jsonb) AS r(old_pk bigint, new_pk bigint, kind text, "
            "slug text, previous jsonb, changes jsonb)"
        ),
        sql.SQL("import_uuid = %s AND model = %s AND old_pk = r.old_pk"),
        ("new_pk", "kind", "slug", "previous", "changes"),
        (rows, import_uuid, model),
    )


# ---------------------------------------------------------------------------------------
# The batch writer


_COPY_LINE = re.compile(r"COPY \S+, line (\d+)")


class BatchWriter:
    """Writes batches of one import to the target; one instance per connection.

    Args:
        conn: an open psycopg connection (not in autocommit).
        settings: the import's settings.
        registry: the model registry.
        layouts: model -> table layout (None when the target lacks the table).
        handlers: model -> handler (models without an entry use ``Handler``).
    """

    #: Whether batches of models without rules may be written set-based (the tests
    #: compare both paths).
    set_based = True

    def __init__(
        self,
        conn: psycopg.Connection,
        settings: ImportSettings,
        registry: Registry,
        layouts: dict[str, TableLayout | None],
        handlers: dict[str, Handler],
    ) -> None:
        self.conn = conn
        self.settings = settings
        self.registry = registry
        self.layouts = layouts
        self.handlers = handlers
        self.default_handler = Handler()
        self.fault = FaultPlan.parse(settings.fault) if settings.fault else None
        #: The set-based statements of each model and column set (``_write_whole``).
        self._set_statements: dict[tuple[str, tuple[str, ...]], SetStatements | None] = {}
        #: Batches of each model written by this writer (numbers them for fault plans).
        self.batch_numbers: dict[str, int] = {}

    def handler(self, model: str) -> Handler:
        return self.handlers.get(model, self.default_handler)

    def write(self, model_name: str, rows: Sequence[Converted]) -> BatchResult:
        """Writes one batch of rows of one model in one transaction."""
        model = self.registry[model_name]
        self.batch_numbers[model_name] = self.batch_numbers.get(model_name, 0) + 1
        result = BatchResult(model=model_name, stage=model.stage, rows=len(rows))
        layout = self.layouts.get(model_name)
        if layout is None:
            raise RuntimeError(f"no table layout for {model_name}")
        handler = self.handler(model_name)
        failed: Finding | None = None
        fault, number = self.fault, self.batch_numbers[model_name]
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                self._write(cur, model, layout, handler, rows, result)
                if fault is not None and fault.fires("in-transaction", model_name, number):
                    raise InjectedFault(f"injected fault in a transaction of {model_name}")
                if fault is not None and fault.fires("drop-connection", model_name, number):
                    cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            if fault is not None and fault.fires("after-commit", model_name, number):
                raise InjectedFault(f"injected fault after a commit of {model_name}")
        except RowFailed as exc:
            failed = self._finding(exc.kind, model_name, None, exc.reason)
        except psycopg.errors.IntegrityError as exc:
            failed = self._finding("IntegrityError", model_name, rows, exc)
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError) and (self.conn.closed or self.conn.broken):
                raise  # a lost connection: let Beam retry the bundle
            failed = self._finding("DatabaseError", model_name, rows, exc)
        if failed is not None:
            result = BatchResult(model=model_name, stage=model.stage, rows=len(rows), errors=1)
            self.record_findings([failed])
        return result

    def _finding(
        self, kind: str, model: str, rows: Sequence[Converted] | None, exc: Exception | str
    ) -> Finding:
        row = None
        reason = str(exc)
        if isinstance(exc, psycopg.Error):
            diag = exc.diag
            reason = f"{type(exc).__name__}: {diag.message_primary or exc}"
            if diag.message_detail:
                reason += f" ({diag.message_detail})"
            match = _COPY_LINE.search(diag.context or "")
            ctx = getattr(self, "_ctx", None)
            current = ctx.current if ctx is not None else None
            if current is not None:
                row = (current.ordinal, current.old_pk)
            elif match and ctx is not None and 0 < int(match.group(1)) <= len(ctx.copy_group):
                item = ctx.copy_group[int(match.group(1)) - 1]
                row = (item.ordinal, item.old_pk)
        if row is None and rows and len(rows) == 1:
            row = (rows[0].ordinal, rows[0].pk)
        return Finding(kind, model, row[0] if row else None, row[1] if row else None, reason)

    def _write(
        self,
        cur: psycopg.Cursor,
        model: ModelInfo,
        layout: TableLayout,
        handler: Handler,
        rows: Sequence[Converted],
        result: BatchResult,
    ) -> None:
        settings = self.settings
        rules = set_based_rules(handler) if self.set_based else None
        if rules is not None:
            landed = self._write_whole(cur, model, layout, handler, rules, rows)
            if landed is not None:
                result.inserted = len(rows)
                if rules.onto_kind == EXISTING:
                    result.inserted, result.existing = len(rows) - landed, landed
                return
        lookup = load_lookup(cur, settings.import_uuid, ledger_refs(layout, rows))
        ctx = WriteContext(
            cur, settings, self.registry, model, layout, lookup, self.layouts, batch=rows
        )
        self._ctx = ctx
        prepared: list[Item] = []
        drops: list[tuple[Converted, str]] = []
        for row in rows:
            item = Item(row.ordinal, row.pk, dict(row.values), source=row.values)
            try:
                rewrite_foreign_keys(ctx, item, handler)
                handler.prepare(ctx, item)
            except RowDropped as exc:
                drops.append((row, str(exc)))
                continue
            prepared.append(item)
        result.dropped = len(drops)
        claimed = self._claim(cur, model, layout, prepared)
        mine = [
            item
            for item in prepared
            if item.old_pk in claimed and claimed[item.old_pk][1] == item.ordinal
        ]
        for item in mine:
            item.new_pk = claimed[item.old_pk][0]
        duplicates = []
        if len(mine) < len(prepared):
            mine_ids = {id(i) for i in mine}
            others = [i for i in prepared if id(i) not in mine_ids]
            already = self._read_back(cur, model.name, [i.old_pk for i in others])
            for item in others:
                entry = already.get(item.old_pk)
                if entry is not None and entry[1] == item.ordinal:
                    result.already += 1
                    self._count(result, entry[0])
                else:
                    first = entry[1] if entry else "?"
                    duplicates.append(
                        (
                            item,
                            f"duplicate pk {item.old_pk}: row {first} of "
                            f"{model.name} has the same pk",
                        )
                    )
        if mine:
            mine.sort(key=lambda i: i.ordinal)
            handler.write(ctx, mine)
            ctx.current = None
            # Sentry's outboxes copy some models into replica tables (rules/replicas.py).
            write_replicas(ctx, layout.table, [i.new_pk for i in mine if i.kind == INSERTED])
            changed = [
                i
                for i in mine
                if i.kind != INSERTED
                or i.slug is not None
                or i.previous is not None
                or i.changes
                or i.new_pk != claimed[i.old_pk][0]
            ]
            if changed:
                record_outcomes(cur, settings.import_uuid, model.name, changed)
            for item in mine:
                self._count(result, item.kind)
        reports = [(row.model, row.ordinal, row.pk, "dropped", why) for row, why in drops]
        reports += [(model.name, i.ordinal, i.old_pk, "skipped", why) for i, why in duplicates]
        result.skipped = len(duplicates)
        if reports:
            write_reports(cur, settings, reports)
        # In this transaction: a batch that rolls back counts nothing, and rows an earlier
        # attempt or run committed were counted by it.
        record_batch(cur, settings, model.stage, model.name, len(mine), len(reports))

    def _write_whole(
        self,
        cur: psycopg.Cursor,
        model: ModelInfo,
        layout: TableLayout,
        handler: Handler,
        rules: SetBasedRules,
        rows: Sequence[Converted],
    ) -> int | None:
        """Writes the batch set-based (``relocate.db.set_write``; ``rules``: what the
        model's handler needs of a batch, ``Handler.set_based``) when its rows share one
        column set and hold no pk twice; returns how many rows landed on rows the table
        held, or None when it did not write the batch (nothing was written)."""
        if not rows:
            return None
        if layout.id_sequence is None:  # the per-row path reports it
            return None
        if len({r.pk for r in rows}) != len(rows):
            return None
        ctx = WriteContext(cur, self.settings, self.registry, model, layout, {}, self.layouts)
        self._ctx = ctx
        rows = handler.prepare_set(ctx, rows)
        columns = tuple(rows[0].values)
        if any(tuple(r.values) != columns for r in rows):
            return None
        key = (model.name, columns)
        if key not in self._set_statements:
            self._set_statements[key] = build_statements(layout, columns, replicated(layout), rules)
        statements = self._set_statements[key]
        if statements is None:
            return None
        copy_rows = copy_rows_of(statements, rows)
        if copy_rows is None:
            return None

        def after(inserted: set[int]) -> None:
            handler.after_set(ctx, [r for r in rows if r.ordinal in inserted])

        landed = write_set_based(ctx, model, statements, copy_rows, after)
        if landed is not None:
            record_batch(cur, self.settings, model.stage, model.name, len(rows), 0)
        return landed

    @staticmethod
    def _count(result: BatchResult, kind: str) -> None:
        if kind == INSERTED:
            result.inserted += 1
        elif kind == EXISTING:
            result.existing += 1
        else:
            result.overwritten += 1

    def _claim(
        self, cur: psycopg.Cursor, model: ModelInfo, layout: TableLayout, items: list[Item]
    ) -> dict[int, tuple[int, int]]:
        """Claims the rows in the ledger; returns old_pk -> (new_pk, ordinal) claimed now."""
        if not items:
            return {}
        if layout.id_sequence is None:
            raise RowFailed("DatabaseError", f"table {layout.table} has no id sequence")
        # Rows claimed before (a resumed batch) or twice in the batch (a repeated pk) are
        # not claimed: the first in file order is.
        rows = insert_skipping_taken(
            cur,
            """
            INSERT INTO relocate_pk_map
                (import_uuid, model, old_pk, new_pk, kind, ordinal, stage)
            SELECT %s, %s, t.old_pk, nextval(%s::regclass), 'Inserted', t.ordinal, %s
            FROM unnest(%s::bigint[], %s::bigint[]) AS t(old_pk, ordinal)
            ORDER BY t.ordinal
            """,
            "RETURNING old_pk, new_pk, ordinal",
            (
                self.settings.import_uuid,
                model.name,
                layout.id_sequence,
                model.stage,
                bigint_array(i.old_pk for i in items),
                bigint_array(i.ordinal for i in items),
            ),
        )
        return {old: (new, ordinal) for old, new, ordinal in rows}

    def _read_back(
        self, cur: psycopg.Cursor, model: str, pks: list[int]
    ) -> dict[int, tuple[str, int]]:
        rows = index_lookup(
            cur,
            """
            SELECT r.old_pk, m.kind, m.ordinal
            FROM unnest(%s::bigint[]) AS r(old_pk)
            CROSS JOIN LATERAL (
                SELECT m.kind, m.ordinal FROM relocate_pk_map m
                WHERE m.import_uuid = %s AND m.model = %s AND m.old_pk = r.old_pk
                LIMIT 1
            ) AS m
            """,
            (bigint_array(pks), self.settings.import_uuid, model),
        )
        return {old: (kind, ordinal) for old, kind, ordinal in rows}

    def record_findings(self, findings: Sequence[Finding]) -> None:
        """Stores findings in the report table (own transaction)."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            write_reports(
                cur,
                self.settings,
                [(f.model, f.ordinal or 0, f.left_pk, "error", f.reason, f.kind) for f in findings],
            )


def _clean(text: str) -> str:
    """Report text as PostgreSQL stores it (no NUL characters; input may carry them)."""
    return text.replace("\x00", "\\0")


def reported_model(model: str) -> str:
    """A model name as ``relocate_report.model`` holds it."""
    return _clean(model)[:200]


def reported_pk(pk: Any) -> str | None:
    """A source pk as ``relocate_report.source_pk`` holds it."""
    return None if pk is None else _clean(json.dumps(pk))[:100]


def write_reports(cur: psycopg.Cursor, settings: ImportSettings, entries: Sequence[tuple]) -> None:
    """Writes report rows: (model, ordinal, source pk, action, reason[, finding kind])."""
    if not entries:
        return
    cur.execute(
        """
        INSERT INTO relocate_report
            (run_id, import_uuid, model, ordinal, source_pk, action, reason, finding_kind)
        SELECT %s, %s, t.model, t.ordinal, t.pk, t.action, t.reason, t.kind
        FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[])
             AS t(model, ordinal, pk, action, reason, kind)
        ON CONFLICT DO NOTHING
        """,
        (
            settings.run_id,
            settings.import_uuid,
            [reported_model(e[0]) for e in entries],
            [e[1] for e in entries],
            [reported_pk(e[2]) for e in entries],
            [e[3] for e in entries],
            [_clean(e[4])[:2000] for e in entries],
            [e[5] if len(e) > 5 else None for e in entries],
        ),
    )
