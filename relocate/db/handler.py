"""What a model's rules work with while one batch is written.

The row being written (``Item``) and what became of it, the batch's ``WriteContext``
(cursor, ledger lookups, per-batch uniqueness memory), the base ``Handler`` every model's
rules extend, and the SQL helpers the rules share. The batch engine that drives them is
``relocate.db.sink``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from relocate.db.sql_literals import array_literal, bigint_array
from relocate.logic.convert import Converted, TableLayout
from relocate.logic.settings import ImportSettings
from relocate.schemas.registry import ForeignKey, ModelInfo, Registry

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


class LedgerEntry(NamedTuple):
    """What the ledger says of a referenced row (a tuple: a batch builds thousands)."""

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
    #: Columns the rules changed on purpose (``note_change``); kept in the ledger.
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)


def note_change(item: Item, column: str, action: str, reason: str, **detail: Any) -> None:
    """Records that a rule changed ``column`` of this row on purpose, and why.

    The ledger keeps it (``relocate_pk_map.changes``), so that ``relocate plan`` and
    anyone auditing an import can list every renamed and regenerated value. ``detail``
    must never hold a secret (a token or key value): name the column, not its value.

    Args:
        item: the row.
        column: the column changed.
        action: ``renamed`` or ``regenerated``.
        reason: why, in a few words.
        detail: JSON-able facts about the change (the old name, what it collided with).
    """
    item.changes[column] = {"action": action, "reason": reason, **detail}


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


def is_pk(value: Any) -> bool:
    """Whether a foreign-key value can name a row: an int (JSON's integers), not a bool
    (``True == 1`` would find pk 1's ledger entry) nor anything else."""
    return type(value) is int


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
                found = {r[0] for r in self.cur.execute(query, (array_literal(values),))}
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
        if not is_pk(old_pk):
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


#: Planner settings for one keyed lookup. An import's tables grow faster than autovacuum
#: analyses them (it looks once a minute), and on the statistics of a nearly empty ledger
#: PostgreSQL took "all of the import's ledger rows" for a few dozen and joined each key
#: of the batch against all of them: up to 0.7 s per batch's lookup at 300k rows.
_INDEX_ONLY = ("enable_seqscan", "enable_bitmapscan")
#: And for a statement that joins its probed rows back by tuple id: nested loops only.
_NESTED_ONLY = (*_INDEX_ONLY, "enable_hashjoin", "enable_mergejoin")


def _under_planner(
    cur: psycopg.Cursor,
    names: Sequence[str],
    statement: Any,
    params: Sequence[Any] | Mapping[str, Any],
) -> psycopg.Cursor:
    """Runs ``statement`` with the planner settings ``names`` off for it alone; returns
    the cursor that holds its rows.

    The settings, the statement and the settings back on go in one pipeline: one round
    trip to the server, not three (two thirds of a small lookup's time were the
    ``set_config`` calls' round trips).
    """

    def settings(value: str) -> str:
        return "SELECT " + ", ".join(f"set_config('{n}', '{value}', true)" for n in names)

    conn = cur.connection
    statement_cur = conn.cursor()
    with conn.pipeline():
        cur.execute(settings("off"))
        statement_cur.execute(statement, params)
        cur.execute(settings("on"))
    return statement_cur


def under_nested_loops(
    cur: psycopg.Cursor, action: Callable[[], Any]
) -> Any:
    """Runs ``action`` (statements that select rows by their keys, ``id = ANY(...)``, and
    join them to their parents by primary key) with the planner held to index scans and
    nested loops, as ``index_statement`` does; returns what it returns.

    On the statistics of a table the import is filling (autovacuum analyses it about once
    a minute), the planner took a few thousand rows for tens of thousands: it read the
    whole table and hashed the parent's for every batch (20 ms a batch of member teams at
    1M rows, growing with the table). The settings are the transaction's
    (``set_config(..., true)``) and are put back when ``action`` returns; when it raises,
    the transaction (or its savepoint) is rolled back anyway.
    """

    def settings(value: str) -> str:
        return "SELECT " + ", ".join(f"set_config('{n}', '{value}', true)" for n in _NESTED_ONLY)

    cur.execute(settings("off"))
    result = action()
    cur.execute(settings("on"))
    return result


def index_lookup(
    cur: psycopg.Cursor, query: Any, params: Sequence[Any] | Mapping[str, Any]
) -> list[tuple]:
    """Runs a keyed lookup as one index probe per key, whatever the statistics say.

    ``query`` joins the keys (``unnest(...)``) ``CROSS JOIN LATERAL`` to a subquery that
    matches one key on a unique index and ends in ``LIMIT 1``: the limit keeps the planner
    from flattening it into a join it could plan from stale estimates, and with scans
    other than the index's turned off for the statement, each key is one probe. Runs in
    the current transaction; returns the rows.
    """
    with _under_planner(cur, _INDEX_ONLY, query, params) as found:
        return found.fetchall()


def under_index_planner(
    cur: psycopg.Cursor, statement: Any, params: Sequence[Any] | Mapping[str, Any]
) -> psycopg.Cursor:
    """Runs a statement whose keyed subqueries (``LATERAL ... LIMIT 1``) must each be one
    index probe, as ``index_lookup`` does; returns the cursor that holds its result."""
    return _under_planner(cur, _INDEX_ONLY, statement, params)


def index_statement(
    cur: psycopg.Cursor, statement: Any, params: Sequence[Any] | Mapping[str, Any]
) -> None:
    """Runs a statement that finds its rows as ``index_lookup`` does and joins them back by
    tuple id (``WHERE t.ctid = found.tid``): with scans other than the index's and joins
    other than nested loops turned off, each row is one probe and one fetch by id."""
    _under_planner(cur, _NESTED_ONLY, statement, params).close()


def try_unique(ctx: WriteContext, action: Callable[[], None]) -> bool:
    """Runs ``action`` under a savepoint; on a unique violation undoes it, returns False.

    For check-then-insert rules (usernames, slugs): a concurrent batch can take the
    value between the check and the insert, and the rule then tries the next value.
    The savepoint is psycopg's nested transaction, as in ``insert_skipping_taken``.
    """
    try:
        with ctx.cur.connection.transaction():
            action()
    except (psycopg.errors.UniqueViolation, Collision):
        return False
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


def update_found_rows(
    cur: psycopg.Cursor,
    table: str,
    rows: sql.Composable,
    probe: sql.Composable,
    columns: Iterable[str],
    params: Sequence[Any],
) -> None:
    """Updates rows of ``table`` from a set of rows given as one value (a JSON array):
    one statement, each row found by one index probe.

    ``rows`` is the set-returning expression that yields the given rows as ``r``;
    ``probe`` the condition on ``table``'s columns and ``r``'s that finds a given row's
    target through a unique index (at most one row); ``columns`` are set to the given
    row's values of the same name. The target rows are found as
    ``index_lookup`` finds keys and updated by tuple id (``index_statement``): on the stale
    statistics of a growing table a plain join with the given rows planned a scan of the
    whole table (1.2 s per batch of ledger outcomes at 50k rows). ``params`` fill the
    placeholders of ``rows`` and then of ``probe``.
    """
    target = sql.Identifier(table)
    index_statement(
        cur,
        sql.SQL(
            "UPDATE {t} AS x SET {sets} FROM (SELECT f.tid, r.* FROM {rows} "
            "CROSS JOIN LATERAL (SELECT ctid AS tid FROM {t} WHERE {probe} LIMIT 1) AS f) AS u "
            "WHERE x.ctid = u.tid"
        ).format(
            t=target,
            rows=rows,
            probe=probe,
            sets=sql.SQL(", ").join(
                sql.SQL("{c} = u.{c}").format(c=sql.Identifier(c)) for c in columns
            ),
        ),
        params,
    )


def update_rows(ctx: WriteContext, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """Overwrites columns of existing rows, found by id: one statement per column set.

    The rows travel as one JSON array read back with the table's own row type
    (``jsonb_populate_recordset``), so that each value is parsed as its column's type
    (``update_found_rows``). Pipelined UPDATEs, one per row, cost 50 us of Python per row
    (3.5 s per worker at 1M rows, mostly the primary addresses of users). A row named
    twice takes its last values, as the same UPDATEs run in order would leave it.
    """
    groups: dict[tuple[str, ...], dict[int, dict[str, Any]]] = {}
    for row_id, values in updates:
        if values:
            group = groups.setdefault(tuple(values), {})
            group.pop(row_id, None)
            group[row_id] = values
    table = ctx.layout.table
    for columns, group in groups.items():
        rows = json.dumps(
            [{"id": row_id, **values} for row_id, values in group.items()], default=_json_value
        )
        update_found_rows(
            ctx.cur,
            table,
            sql.SQL("jsonb_populate_recordset(NULL::{}, %s::jsonb) AS r").format(
                sql.Identifier(table)
            ),
            sql.SQL("id = r.id"),
            columns,
            (rows,),
        )


def _json_value(value: Any) -> Any:
    """A value JSON cannot hold as it is (dates and times), as PostgreSQL reads its type
    from text."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as a column value")


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


def insert_skipping_taken(
    cur: psycopg.Cursor,
    insert: str,
    returning: str,
    params: Sequence[Any] | Mapping[str, Any],
    *,
    often_taken: bool = False,
) -> list[tuple]:
    """Runs ``insert`` (an ``INSERT ... SELECT``) as ``ON CONFLICT DO NOTHING`` would:
    rows whose unique key is taken are skipped; returns the ``returning`` columns of the
    rows inserted.

    It tries the plain INSERT first, under a savepoint, and only when a row is taken
    (a resumed or repeated batch, a collision) runs the statement again with
    ``ON CONFLICT DO NOTHING``. Nearly every batch inserts every row, and the plain
    statement costs the server a third less than the speculative insertion ON CONFLICT
    does per row: claiming 1M ledger rows in batches of 1,000 took 5.3 s against 7.8 s.
    Waits are the same: a plain INSERT of a key that a running transaction inserted waits
    for it as ON CONFLICT does, and fails only if that transaction commits.

    Args:
        cur: a cursor inside a transaction (the savepoint is nested in it).
        insert: the statement up to where ON CONFLICT would go (fixed SQL, no input).
        returning: the RETURNING clause, or "".
        params: the statement's parameters.
        often_taken: rows whose key is taken are the usual case (Email rows: an address
            the table holds already), so the plain attempt would fail nearly every batch,
            spending its work and logging a unique violation in the server's log each
            time; the statement runs with ``ON CONFLICT DO NOTHING`` at once.
    """
    if not often_taken:
        try:
            with cur.connection.transaction():
                cur.execute(f"{insert} {returning}", params)  # type: ignore[arg-type]
                return cur.fetchall() if returning else []
        except (psycopg.errors.UniqueViolation, psycopg.errors.ExclusionViolation):
            pass  # a row is taken: the statement again, skipping taken rows
    cur.execute(f"{insert} ON CONFLICT DO NOTHING {returning}", params)  # type: ignore[arg-type]
    return cur.fetchall() if returning else []


def record_side_effects(ctx: WriteContext, table: str, ids: Iterable[int]) -> None:
    """Remembers rows created beside the export's rows, for rollback."""
    ids = [i for i in ids if i is not None]
    if ids:
        insert_skipping_taken(
            ctx.cur,
            "INSERT INTO relocate_side_effect (import_uuid, table_name, row_id) "
            "SELECT %s, %s, unnest(%s::bigint[])",
            "",
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
    ctx: WriteContext,
    statement: str,
    params: Sequence[Any],
    table: str,
    *,
    often_taken: bool = False,
) -> list[int]:
    """Runs an ``INSERT ... SELECT`` of side-effect rows (colliding rows skipped); records
    the rows it created, for rollback; returns their ids. ``often_taken``: see
    ``insert_skipping_taken``."""
    inserted = insert_skipping_taken(
        ctx.cur, statement, "RETURNING id", params, often_taken=often_taken
    )
    ids = [r[0] for r in inserted]
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
        # A group's rows hold their columns in the group's order (its key), so a row is
        # its id and its values as they are; only JSON values need wrapping.
        json_at = [n for n, c in enumerate(columns, 1) if kinds.get(c) == "json"]
        ctx.current = None
        ctx.copy_group = group
        with ctx.cur.copy(query) as copy:
            for item in group:
                row = [item.new_pk, *item.values.values()]
                for n in json_at:
                    row[n] = adapt(row[n], "json")
                copy.write_row(row)


# ---------------------------------------------------------------------------------------
# Model handlers: the default, and the base class of the per-model rules.


@dataclass(frozen=True)
class SetBasedRules:
    """When a batch of a model with rules is what a plain insert would write, so that it
    can take the set-based path (``relocate.db.set_write``): the rules only act on rows
    that meet one of these, and the path checks, for the whole batch, that none does.

    Attributes:
        new_keys: column sets (as written: keys rewritten) that must be new: in no row
            of the table, in no two rows of the batch (NULLs compared as equal).
        inserted_targets: key columns whose target must not be a row the import merged
            into an existing one (ledger kind Existing).
        onto_key: a column set (as written) by which a row the table holds takes the
            imported row: the imported row's ``onto_columns`` are saved onto it and the
            ledger maps the row to it (still Inserted, as Sentry reports it), after an id
            was drawn for it as for every claimed row. No two rows of the batch may
            share it (compared with NULLs as equal). The handler's ``after_set`` gets
            the rows inserted.
        onto_columns: the columns saved onto the row found by ``onto_key``; None: every
            column of the row but the key's.
        onto_lower: the key is compared lower-cased (PostgreSQL's ``lower``), both in
            the table (the lowest id that matches) and between rows of the batch.
        onto_kind: the ledger kind of a row that lands (Inserted or Existing; the sink
            counts the batch by it).
    """

    new_keys: tuple[tuple[str, ...], ...] = ()
    inserted_targets: tuple[str, ...] = ()
    onto_key: tuple[str, ...] = ()
    onto_columns: tuple[str, ...] | None = None
    onto_lower: bool = False
    onto_kind: str = INSERTED


#: A model without rules: every batch whose rows all resolve is a plain insert.
PLAIN = SetBasedRules()


def set_based_rules(handler: Handler) -> SetBasedRules | None:
    """What lets ``handler``'s batches be written set-based, or None when they never can.

    Read from the handler's own class: a subclass with rules of its own does not inherit
    its parent's.
    """
    if type(handler) is Handler:
        return PLAIN
    return vars(type(handler)).get("set_based")


class Handler:
    """Default behaviour of a model: FK rewrite, plain insert, ImportKind Inserted."""

    #: FK columns that are nulled, not dropped, when their target was not imported.
    null_when_missing: frozenset[str] = frozenset()
    #: Unique column sets whose repeats the rules resolve (a rename, a merge into one row,
    #: a new value): not checked against the export before the writes
    #: (``relocate.db.constraints``).
    resolves_uniques: tuple[frozenset[str], ...] = ()

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

    def prepare_set(self, ctx: WriteContext, rows: Sequence[Converted]) -> Sequence[Converted]:
        """The batch's rows as ``prepare`` would leave them, for the set-based path
        (``set_based``): only what ``prepare`` does to every row alike, never a drop.
        The rows given stay as they are (the per-row path may take them after)."""
        return rows

    def after_set(self, ctx: WriteContext, inserted: list[Converted]) -> None:
        """What ``write`` does beside the rows, for the rows the set-based path inserted
        (not those it saved onto a row the table held), in batch order."""


def rewrite_foreign_keys(ctx: WriteContext, item: Item, handler: Handler) -> None:
    """Replaces source pks by new pks, or drops the row (spec 5.2)."""
    values = item.values
    for column, target, excluded, field_name in ctx.layout.rewritten_keys:
        value = values.get(column)
        if value is None:
            continue
        entry = None if excluded else ctx.target(target, value)
        if entry is None:
            if column in handler.null_when_missing:
                values[column] = None
                continue
            why = "is excluded from relocation" if excluded else "was not imported"
            raise RowDropped(f"`{field_name}` points at {target} pk {value}, which {why}")
        values[column] = entry.new_pk


def ledger_refs(layout: TableLayout, rows: Iterable[Converted]) -> set[tuple[str, int]]:
    refs: set[tuple[str, int]] = set()
    fks: list[tuple[str, ForeignKey]] = [
        (c, fk) for c, fk in layout.foreign_keys if not fk.excluded
    ]
    for row in rows:
        values = row.values
        for column, fk in fks:
            value = values.get(column)
            if is_pk(value):
                refs.add((fk.target, value))
    return refs


def split_onto_existing(
    items: Sequence[Item], keys: Sequence[Any], existing: dict[Any, int]
) -> tuple[list[Item], list[Item]]:
    """Splits a batch by its rows' unique keys into rows to insert and rows that land on a
    row already there (their ``new_pk`` set to its id).

    ``existing`` maps keys to row ids in the target; a later row whose key an earlier row of
    the batch took lands on that row, so the batch never inserts one key twice.
    """
    new: list[Item] = []
    onto: list[Item] = []
    for item, key in zip(items, keys):
        if key in existing:
            item.new_pk = existing[key]
            onto.append(item)
        else:
            existing[key] = item.new_pk
            new.append(item)
    return new, onto
