"""The PostgreSQL sink: one transaction per batch of rows of one model.

Per batch (spec section 10.2, made per row, see DESIGN.md "Invariants"):

1. Resolve the batch's foreign keys against the pk-map ledger (one query).
2. Rewrite and normalise each row; a row whose required target was not imported is
   dropped and reported.
3. Claim the rows in the ledger (``INSERT ... ON CONFLICT DO NOTHING``) with ids drawn
   from the table's sequence. The ledger's primary key is the lock: a retried or
   concurrent attempt of the same rows claims nothing and writes nothing.
4. Write the claimed rows (COPY, or the model's own collision rules), then record in
   the ledger what became of each (Inserted, Existing, Overwrite) and commit.

Identifiers in SQL come from the registry and the target's catalog, never from the export.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from relocate.db.faults import FaultPlan, InjectedFault
from relocate.logic.convert import Converted, TableLayout
from relocate.logic.settings import ImportSettings
from relocate.schemas.registry import ForeignKey, ModelInfo, Registry

log = logging.getLogger("relocate.sink")

INSERTED = "Inserted"
EXISTING = "Existing"
OVERWRITE = "Overwrite"


class RowDropped(Exception):
    """The row is not written (reported with the reason)."""


class Collision(Exception):
    """A unique value was taken between its check and its insert (a concurrent batch)."""


class RowFailed(Exception):
    """The row cannot be written: a finding that aborts the import."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class LedgerEntry:
    new_pk: int
    kind: str
    slug: str | None = None


@dataclass
class Item:
    """A row being written: its values, and what became of it."""

    ordinal: int
    old_pk: int
    values: dict[str, Any]
    new_pk: int | None = None
    kind: str = INSERTED
    slug: str | None = None
    previous: dict[str, Any] | None = None
    #: The row's values as converted, foreign keys still holding source pks.
    source: dict[str, Any] = field(default_factory=dict)


@dataclass
class Finding:
    """Sentry's RpcImportError finding (spec 9)."""

    kind: str
    model: str
    ordinal: int | None
    left_pk: Any
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "finding": "RpcImportError",
            "kind": self.kind,
            "left_pk": self.left_pk,
            "on": {"model": self.model, "ordinal": self.ordinal},
            "reason": self.reason,
            "right_pk": None,
        }


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


@dataclass
class WriteContext:
    """Everything a model handler needs while writing one batch."""

    cur: psycopg.Cursor
    settings: ImportSettings
    registry: Registry
    model: ModelInfo
    layout: TableLayout
    lookup: dict[tuple[str, int], LedgerEntry]
    layouts: dict[str, TableLayout | None]
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    #: The row being written (per-row paths) or the rows of the running COPY, so that a
    #: database error can name the row that caused it.
    current: Item | None = None
    copy_group: Sequence[Item] = ()
    _existing: dict[str, frozenset[int]] = field(default_factory=dict)
    #: Per-batch memory of the rules.
    scratch: dict[str, Any] = field(default_factory=dict)
    #: The batch's rows as converted (for per-batch lookups such as ``is_free``).
    batch: Sequence[Converted] = ()
    _taken: dict[str, set[str]] = field(default_factory=dict)
    _given: dict[str, set[str]] = field(default_factory=dict)

    def is_free(self, column: str, value: Any) -> bool:
        """Whether ``value`` is free for the unique ``column``; if so, it is reserved.

        Taken means: already in the table (one query per column and batch, for all the
        batch's values at once) or given to an earlier row of this batch.
        """
        text = str(value)
        given = self._given.setdefault(column, set())
        if text in given or text in self._existing_values(column):
            return False
        given.add(text)
        return True

    def reserve(self, column: str, value: Any) -> None:
        """Marks a newly generated value as given, so no later row of the batch takes it."""
        self._given.setdefault(column, set()).add(str(value))

    def _existing_values(self, column: str) -> set[str]:
        if column not in self._taken:
            values = sorted({str(v) for r in self.batch if (v := r.values.get(column)) is not None})
            found: set[str] = set()
            if values:
                col = self.layout.column(column)
                cast = "uuid[]" if col is not None and col.kind == "uuid" else "text[]"
                query = sql.SQL("SELECT {c}::text FROM {t} WHERE {c} = ANY(%s::{cast})").format(
                    c=sql.Identifier(column),
                    t=sql.Identifier(self.layout.table),
                    cast=sql.SQL(cast),
                )
                found = {r[0] for r in self.cur.execute(query, (values,))}
            self._taken[column] = found
        return self._taken[column]

    def existing_targets(self, model: str) -> frozenset[int]:
        """New pks of this batch's referenced rows of ``model`` that were Existing."""
        if model not in self._existing:
            self._existing[model] = frozenset(
                e.new_pk for (m, _), e in self.lookup.items() if m == model and e.kind == EXISTING
            )
        return self._existing[model]

    def target(self, model: str, old_pk: Any) -> LedgerEntry | None:
        if not isinstance(old_pk, int) or isinstance(old_pk, bool):
            return None
        return self.lookup.get((model, old_pk))

    def table_of(self, model: str) -> str:
        return self.registry[model].table


# ---------------------------------------------------------------------------------------
# SQL helpers


def adapt(value: Any, kind: str) -> Any:
    """Wraps values for psycopg (JSON columns need Jsonb)."""
    if value is None:
        return None
    if kind == "json":
        return value if isinstance(value, Jsonb) else Jsonb(value)
    return value


def try_unique(ctx: WriteContext, action: Callable[[], None]) -> bool:
    """Runs ``action`` under a savepoint; on a unique violation undoes it, returns False.

    For check-then-insert rules (usernames, slugs): a concurrent batch can take the
    value between the check and the insert, and the rule then tries the next value.
    """
    ctx.cur.execute("SAVEPOINT relocate_unique")
    try:
        action()
    except (psycopg.errors.UniqueViolation, Collision):
        ctx.cur.execute("ROLLBACK TO SAVEPOINT relocate_unique")
        return False
    ctx.cur.execute("RELEASE SAVEPOINT relocate_unique")
    return True


def insert_row(
    ctx: WriteContext, item: Item, table: str | None = None, layout: TableLayout | None = None
) -> None:
    """Inserts one row with its claimed id (for models written row by row)."""
    layout = layout or ctx.layout
    table = table or layout.table
    kinds = {c.column: c.kind for c in layout.columns}
    columns = ["id", *item.values]
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    params = [item.new_pk, *(adapt(v, kinds.get(c, "")) for c, v in item.values.items())]
    ctx.current = item
    ctx.cur.execute(query, params)


def update_rows(ctx: WriteContext, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """Overwrites columns of existing rows: one pipelined statement per column set."""
    kinds = {c.column: c.kind for c in ctx.layout.columns}
    groups: dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]] = {}
    for row_id, values in updates:
        if values:
            groups.setdefault(tuple(values), []).append((row_id, values))
    for columns, group in groups.items():
        query = sql.SQL("UPDATE {} SET {} WHERE id = %s").format(
            sql.Identifier(ctx.layout.table),
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns),
        )
        ctx.cur.executemany(
            query,
            [[*(adapt(v[c], kinds.get(c, "")) for c in columns), row_id] for row_id, v in group],
        )


def select_row(ctx: WriteContext, row_id: int, columns: Iterable[str]) -> dict[str, Any]:
    cols = list(columns)
    query = sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
        sql.SQL(", ").join(map(sql.Identifier, cols)), sql.Identifier(ctx.layout.table)
    )
    row = ctx.cur.execute(query, [row_id]).fetchone()
    return dict(zip(cols, row)) if row else {}


def find_existing(
    ctx: WriteContext,
    columns: dict[str, Any],
    table: str | None = None,
    ci_columns: frozenset[str] = frozenset(),
) -> int | None:
    """The id of a row with these column values (case-insensitive for ``ci_columns``)."""
    conds = []
    params = []
    for col, value in columns.items():
        if value is None:
            conds.append(sql.SQL("{} IS NULL").format(sql.Identifier(col)))
        elif col in ci_columns:
            conds.append(sql.SQL("lower({}) = lower(%s)").format(sql.Identifier(col)))
            params.append(value)
        else:
            conds.append(sql.SQL("{} = %s").format(sql.Identifier(col)))
            params.append(value)
    query = sql.SQL("SELECT id FROM {} WHERE {} ORDER BY id LIMIT 1").format(
        sql.Identifier(table or ctx.layout.table), sql.SQL(" AND ").join(conds)
    )
    row = ctx.cur.execute(query, params).fetchone()
    return row[0] if row else None


def record_side_effects(ctx: WriteContext, table: str, ids: Iterable[int]) -> None:
    """Remembers rows created beside the export's rows, for rollback."""
    ids = [i for i in ids if i is not None]
    if ids:
        ctx.cur.execute(
            "INSERT INTO relocate_side_effect (import_uuid, table_name, row_id) "
            "SELECT %s, %s, unnest(%s::bigint[]) ON CONFLICT DO NOTHING",
            (ctx.settings.import_uuid, table, bigint_array(ids)),
        )


def insert_side_effect(ctx: WriteContext, table: str, values: dict[str, Any]) -> int | None:
    """Inserts one side-effect row unless it collides; records it; returns its id."""
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING RETURNING id").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    row = ctx.cur.execute(query, list(values.values())).fetchone()
    if row is None:
        return None
    record_side_effects(ctx, table, [row[0]])
    return row[0]


def insert_side_effects(
    ctx: WriteContext, statement: str, params: Sequence[Any], table: str
) -> list[int]:
    """Runs an ``INSERT ... SELECT`` of side-effect rows (colliding rows skipped); records
    the rows it created, for rollback; returns their ids."""
    query = statement + " ON CONFLICT DO NOTHING RETURNING id"
    ids = [r[0] for r in ctx.cur.execute(query, params)]  # type: ignore[arg-type]
    record_side_effects(ctx, table, ids)
    return ids


def copy_rows(ctx: WriteContext, items: Sequence[Item]) -> None:
    """Writes rows with their claimed ids through COPY (the fast path)."""
    kinds = {c.column: c.kind for c in ctx.layout.columns}
    groups: dict[tuple[str, ...], list[Item]] = {}
    for item in items:
        groups.setdefault(tuple(item.values), []).append(item)
    for columns, group in groups.items():
        query = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(ctx.layout.table),
            sql.SQL(", ").join(map(sql.Identifier, ["id", *columns])),
        )
        col_kinds = [kinds.get(c, "") for c in columns]
        ctx.current = None
        ctx.copy_group = group
        with ctx.cur.copy(query) as copy:
            for item in group:
                copy.write_row(
                    [item.new_pk, *(adapt(item.values[c], k) for c, k in zip(columns, col_kinds))]
                )


# ---------------------------------------------------------------------------------------
# Model handlers: the default, and the base class of the per-model rules.


class Handler:
    """Default behaviour of a model: FK rewrite, plain insert, ImportKind Inserted."""

    #: FK columns that are nulled, not dropped, when their target was not imported.
    null_when_missing: frozenset[str] = frozenset()

    def validate(self, row: Converted, settings: ImportSettings) -> None:
        """Sentry's own validation of the model (pure, before any write).

        Raises:
            RowInvalid: the row fails validation (a ValidationError finding).
        """

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        """Normalises one row after its foreign keys are rewritten.

        Raises:
            RowDropped: the row is not imported.
        """

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        """Writes the claimed rows; sets each item's kind and new pk where they change."""
        copy_rows(ctx, items)


def rewrite_foreign_keys(ctx: WriteContext, item: Item, handler: Handler) -> None:
    """Replaces source pks by new pks, or drops the row (spec 5.2)."""
    for column, fk in ctx.layout.foreign_keys:
        value = item.values.get(column)
        if value is None:
            continue
        if column in ctx.layout.self_references:
            continue  # written NULL and fixed up after the stage
        entry = None if fk.excluded else ctx.target(fk.target, value)
        if entry is None:
            if column in handler.null_when_missing:
                item.values[column] = None
                continue
            why = "is excluded from relocation" if fk.excluded else "was not imported"
            raise RowDropped(f"`{fk.field}` points at {fk.target} pk {value}, which {why}")
        item.values[column] = entry.new_pk


def ledger_refs(layout: TableLayout, rows: Iterable[Converted]) -> set[tuple[str, int]]:
    refs: set[tuple[str, int]] = set()
    fks: list[tuple[str, ForeignKey]] = [
        (c, fk) for c, fk in layout.foreign_keys if not fk.excluded
    ]
    for row in rows:
        for column, fk in fks:
            value = row.values.get(column)
            if isinstance(value, int) and not isinstance(value, bool):
                refs.add((fk.target, value))
    return refs


def bigint_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers, for ``%s::bigint[]``.

    psycopg adapts a Python list element by element in Python; one string is ~10x
    cheaper for the thousands of keys a batch sends.
    """
    return "{" + ",".join(map(str, map(int, values))) + "}"


_MODEL_NAME = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


def model_array(names: Iterable[str]) -> str:
    """A PostgreSQL array literal of model names (registry names: nothing to quote)."""
    names = list(names)
    for name in names:
        if not _MODEL_NAME.match(name):
            raise ValueError(f"not a model name: {name!r}")
    return "{" + ",".join(names) + "}"


def load_lookup(
    cur: psycopg.Cursor, import_uuid: str, refs: set[tuple[str, int]]
) -> dict[tuple[str, int], LedgerEntry]:
    if not refs:
        return {}
    models, pks = zip(*refs)
    rows = cur.execute(
        """
        SELECT m.model, m.old_pk, m.new_pk, m.kind, m.slug
        FROM unnest(%s::text[], %s::bigint[]) AS r(model, old_pk)
        JOIN relocate_pk_map m
          ON m.import_uuid = %s AND m.model = r.model AND m.old_pk = r.old_pk
        """,
        (model_array(models), bigint_array(pks), import_uuid),
    ).fetchall()
    return {(m, o): LedgerEntry(n, k, s) for m, o, n, k, s in rows}


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
            changed = [
                i
                for i in mine
                if i.kind != INSERTED
                or i.slug is not None
                or i.previous is not None
                or i.new_pk != claimed[i.old_pk][0]
            ]
            if changed:
                # Row by row on the primary key, pipelined: a join with unnest() got a
                # nested-loop plan over the whole model's ledger (1.2 s per batch at 50k).
                cur.executemany(
                    "UPDATE relocate_pk_map SET new_pk = %s, kind = %s, slug = %s, "
                    "previous = %s WHERE import_uuid = %s AND model = %s AND old_pk = %s",
                    [
                        (
                            i.new_pk,
                            i.kind,
                            i.slug,
                            Jsonb(i.previous) if i.previous is not None else None,
                            settings.import_uuid,
                            model.name,
                            i.old_pk,
                        )
                        for i in changed
                    ],
                )
            for item in mine:
                self._count(result, item.kind)
        reports = [(row.model, row.ordinal, row.pk, "dropped", why) for row, why in drops]
        reports += [(model.name, i.ordinal, i.old_pk, "skipped", why) for i, why in duplicates]
        result.skipped = len(duplicates)
        if reports:
            write_reports(cur, settings, reports)

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
        rows = cur.execute(
            """
            INSERT INTO relocate_pk_map
                (import_uuid, model, old_pk, new_pk, kind, ordinal, stage)
            SELECT %s, %s, t.old_pk, nextval(%s::regclass), 'Inserted', t.ordinal, %s
            FROM unnest(%s::bigint[], %s::bigint[]) AS t(old_pk, ordinal)
            ORDER BY t.ordinal
            ON CONFLICT DO NOTHING
            RETURNING old_pk, new_pk, ordinal
            """,
            (
                self.settings.import_uuid,
                model.name,
                layout.id_sequence,
                model.stage,
                bigint_array(i.old_pk for i in items),
                bigint_array(i.ordinal for i in items),
            ),
        ).fetchall()
        return {old: (new, ordinal) for old, new, ordinal in rows}

    def _read_back(
        self, cur: psycopg.Cursor, model: str, pks: list[int]
    ) -> dict[int, tuple[str, int]]:
        rows = cur.execute(
            """
            SELECT m.old_pk, m.kind, m.ordinal
            FROM unnest(%s::bigint[]) AS r(old_pk)
            JOIN relocate_pk_map m
              ON m.import_uuid = %s AND m.model = %s AND m.old_pk = r.old_pk
            """,
            (bigint_array(pks), self.settings.import_uuid, model),
        ).fetchall()
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
            [_clean(e[0])[:200] for e in entries],
            [e[1] for e in entries],
            [None if e[2] is None else _clean(json.dumps(e[2]))[:100] for e in entries],
            [e[3] for e in entries],
            [_clean(e[4])[:2000] for e in entries],
            [e[5] if len(e) > 5 else None for e in entries],
        ),
    )
