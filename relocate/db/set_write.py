"""The set-based write of a batch of a model without rules of its own.

Most of Sentry's models have no collision rules: their rows are inserted with new pks and
their foreign keys rewritten, nothing else. For their batches the sink sends the rows as
they were converted into a temporary table (one COPY) and lets one statement do what the
per-row path does in Python: resolve the foreign keys against the ledger (one index probe
per key), claim the rows in the ledger with ids from the table's sequence, and insert them
with their new pks and rewritten keys.

It is a fast path, not a second set of rules: it commits only a batch in which every row
was claimed and written, and in any other case (a row whose target was not imported, a
pk the ledger already holds, a database error) it leaves nothing behind and the sink
writes the batch row by row, which reports each row as it always has. A batch that would
drop a row claims nothing, so no sequence value is spent before the per-row path runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from relocate.db.handler import (
    EXISTING,
    INSERTED,
    PLAIN,
    SetBasedRules,
    WriteContext,
    adapt,
    is_pk,
    under_index_planner,
)
from relocate.logic.convert import Converted, TableLayout
from relocate.logic.rules.replicas import REPLICAS, write_replicas
from relocate.schemas.registry import ModelInfo

#: Column names of the temporary table that cannot be a Sentry column (they start with ?).
_ORDINAL, _PK = "?ordinal", "?pk"
#: In the statement: the row a row lands on (``SetBasedRules.onto_key``), the id drawn.
_ONTO, _DRAWN = "?onto", "?drawn"

#: The start of a batch's write: its rows with their keys probed, then the ledger's claim.
_SOURCE_AND_CLAIM = """
    WITH src AS MATERIALIZED (
        SELECT s.* {found} FROM {table} s {probes}
    ), claimed AS (
        INSERT INTO relocate_pk_map
            (import_uuid, model, old_pk, new_pk, kind, ordinal, stage)"""

#: The write of a batch: the keys probed, the rows claimed (ids in file order), inserted.
_PLAIN_WRITE = (
    _SOURCE_AND_CLAIM
    + """
        SELECT %(import_uuid)s, %(model)s, s.{pk}, nextval(%(sequence)s::regclass),
            %(kind)s, s.{ordinal}, %(stage)s
        FROM src s {whole}
        ORDER BY s.{ordinal}
        RETURNING old_pk, new_pk, ordinal
    )
    INSERT INTO {target} ("id", {columns})
    SELECT c.new_pk, {selected}
    FROM claimed c JOIN src s ON s.{pk} = c.old_pk AND s.{ordinal} = c.ordinal
    ORDER BY c.ordinal
    {returning}
"""
)

#: The same for rows that land on a row the table holds (``SetBasedRules.onto_key``):
#: every row draws an id in file order, as the per-row claim does; a row that lands is
#: mapped to the row it found and saves its ``onto_columns`` onto it; the rest are
#: inserted. (The drawn ids are taken in a sorted subquery: COALESCE would skip them.)
#: One row: the rows written, and the ordinals of those inserted.
_ONTO_WRITE = (
    _SOURCE_AND_CLAIM
    + """
        SELECT %(import_uuid)s, %(model)s, d.{pk}, COALESCE(d.{onto}, d.{drawn}),
            CASE WHEN d.{onto} IS NULL THEN %(kind)s ELSE {landed_kind} END,
            d.{ordinal}, %(stage)s
        FROM (
            SELECT s.{pk}, s.{ordinal}, s.{onto}, nextval(%(sequence)s::regclass) AS {drawn}
            FROM src s {whole}
            ORDER BY s.{ordinal}
        ) AS d
        RETURNING old_pk, new_pk, ordinal
    ), inserted AS (
        INSERT INTO {target} ("id", {columns})
        SELECT c.new_pk, {selected}
        FROM claimed c JOIN src s ON s.{pk} = c.old_pk AND s.{ordinal} = c.ordinal
        WHERE s.{onto} IS NULL
        ORDER BY c.ordinal
        RETURNING "id"
    ), landed AS (
        UPDATE {target} AS t SET {saved}
        FROM claimed c JOIN src s ON s.{pk} = c.old_pk AND s.{ordinal} = c.ordinal
        WHERE s.{onto} IS NOT NULL AND t."id" = s.{onto}
        RETURNING t."id"
    )
    SELECT (SELECT count(*) FROM inserted) + (SELECT count(*) FROM landed),
        (SELECT array_agg(c.ordinal) FROM inserted i JOIN claimed c ON c.new_pk = i."id")
"""
)


class _NotWholeBatch(Exception):
    """The statement did not write every row: the per-row path takes the batch."""


@dataclass(frozen=True)
class SetStatements:
    """The SQL of one model and column set (built once per writer)."""

    create: sql.Composed
    copy: sql.Composed
    write: sql.Composed
    #: Columns whose values must be pks (ints) or None for the statement to apply.
    key_positions: tuple[int, ...]
    json_positions: tuple[int, ...]
    #: Whether the statement returns the ids it inserted (for the replicas).
    returns_ids: bool = False
    #: Whether rows land on rows the table holds (``SetBasedRules.onto_key``): the
    #: statement returns one row, the rows written and the ordinals of those inserted.
    lands: bool = False


def build_statements(
    layout: TableLayout,
    columns: tuple[str, ...],
    replicated: bool,
    rules: SetBasedRules = PLAIN,
) -> SetStatements | None:
    """The temporary table, its COPY and the write statement of ``layout``'s rows that
    have exactly ``columns``.

    The temporary table has the target's column types (``CREATE ... AS ... WITH NO DATA``:
    types without constraints), the rewritten keys as bigint (a source pk need not fit
    the target's column), and the row's ordinal and source pk. Names come from the
    catalog (``layout``), never from the export. None: ``rules`` cannot be checked on
    rows with these columns (a key column the rows leave to its default).
    """
    if any(c not in columns for key in rules.new_keys for c in key):
        return None
    onto = bool(rules.onto_key)
    saved = (
        [c for c in columns if c not in rules.onto_key]
        if rules.onto_columns is None
        else list(rules.onto_columns)
    )
    if onto and (
        replicated or not saved or any(c not in columns for c in (*rules.onto_key, *saved))
    ):
        return None
    # Named by what it holds, so that one name is always one definition on a connection.
    shape = hashlib.sha1("\0".join((layout.table, *columns)).encode()).hexdigest()[:16]
    table = sql.Identifier(f"relocate_rows_{shape}")
    target = sql.Identifier(layout.table)
    rewritten = {
        column: (target, excluded)
        for column, target, excluded, _ in layout.rewritten_keys
        if column in columns
    }
    kinds = {c.column: c.kind for c in layout.columns}
    create = sql.SQL(
        "CREATE TEMPORARY TABLE IF NOT EXISTS {table} ON COMMIT DELETE ROWS AS "
        "SELECT 0::bigint AS {ordinal}, 0::bigint AS {pk}, {columns} FROM {target} WITH NO DATA"
    ).format(
        table=table,
        ordinal=sql.Identifier(_ORDINAL),
        pk=sql.Identifier(_PK),
        columns=sql.SQL(", ").join(
            sql.SQL("{c}::bigint AS {c}" if c in rewritten else "{c}").format(c=sql.Identifier(c))
            for c in columns
        ),
        target=target,
    )
    copy = sql.SQL("COPY {table} FROM STDIN").format(table=table)

    probes: list[sql.Composable] = []
    checks: list[sql.Composable] = []  # on each row d of the batch
    written: dict[str, sql.Identifier] = {}  # column -> its value as written, in src
    # The same, where the probes are joined (the temporary table is s).
    joined: dict[str, sql.Composable] = {}
    for column in columns:
        name = sql.Identifier(column)
        written[column] = name
        joined[column] = sql.SQL("s.{}").format(name)
        if column not in rewritten:
            continue
        model, excluded = rewritten[column]
        if excluded:
            # A key into a model Sentry does not relocate drops its row.
            checks.append(sql.SQL("d.{} IS NULL").format(name))
            continue
        n = len(probes)
        found, kind = sql.Identifier(f"?{n}"), sql.Identifier(f"?kind{n}")
        probes.append(
            sql.SQL(
                "LEFT JOIN LATERAL (SELECT m.new_pk AS {found}, m.kind AS {kind} "
                "FROM relocate_pk_map m WHERE m.import_uuid = %(import_uuid)s "
                "AND m.model = {model} AND m.old_pk = s.{name} LIMIT 1) AS {alias} ON true"
            ).format(
                found=found,
                kind=kind,
                model=sql.Literal(model),
                name=name,
                alias=sql.Identifier(f"?k{n}"),
            )
        )
        checks.append(sql.SQL("(d.{} IS NULL OR d.{} IS NOT NULL)").format(name, found))
        if column in rules.inserted_targets:
            # A row whose target was merged into an existing row has rules to apply.
            checks.append(sql.SQL("d.{} IS DISTINCT FROM {}").format(kind, sql.Literal(EXISTING)))
        written[column] = found
        joined[column] = sql.SQL("{}.{}").format(sql.Identifier(f"?k{n}"), found)
    found_columns = [
        sql.SQL(", {k}.{f}, {k}.{kind}").format(
            k=sql.Identifier(f"?k{n}"), f=sql.Identifier(f"?{n}"), kind=sql.Identifier(f"?kind{n}")
        )
        for n in range(len(probes))
    ]
    fold = "lower({})" if rules.onto_lower else "{}"
    if onto:
        # The row of the table that the row lands on, found as the rule finds it.
        probes.append(
            sql.SQL(
                "LEFT JOIN LATERAL (SELECT min(o.id) AS {onto} FROM {target} o "
                "WHERE {match}) AS {alias} ON true"
            ).format(
                onto=sql.Identifier(_ONTO),
                target=target,
                match=sql.SQL(" AND ").join(
                    sql.SQL(fold).format(sql.SQL("o.{}").format(sql.Identifier(c)))
                    + sql.SQL(" = ")
                    + sql.SQL(fold).format(joined[c])
                    for c in rules.onto_key
                ),
                alias=sql.Identifier("?ko"),
            )
        )
        found_columns.append(
            sql.SQL(", {}.{}").format(sql.Identifier("?ko"), sql.Identifier(_ONTO))
        )
    whole = (
        [
            sql.SQL("NOT EXISTS (SELECT FROM src d WHERE NOT ({}))").format(
                sql.SQL(" AND ").join(checks)
            )
        ]
        if checks
        else []
    )
    for key in rules.new_keys:
        # A key the table holds already, or two rows of the batch share: rules to apply.
        first, rest = key[0], key[1:]
        held = sql.SQL(" AND ").join(
            [
                sql.SQL("o.{} = d.{}").format(sql.Identifier(first), written[first]),
                *(
                    sql.SQL("o.{} IS NOT DISTINCT FROM d.{}").format(sql.Identifier(c), written[c])
                    for c in rest
                ),
            ]
        )
        whole.append(
            sql.SQL(
                "NOT EXISTS (SELECT FROM src d WHERE d.{first} IS NULL "
                "OR EXISTS (SELECT FROM {target} o WHERE {held}))"
            ).format(first=written[first], target=target, held=held)
        )
        whole.append(_all_distinct(sql.SQL(", ").join(written[c] for c in key)))
    if onto:
        # Two rows of the batch landing on one row: the rule keeps the later's values.
        whole.append(
            _all_distinct(
                sql.SQL(", ").join(sql.SQL(fold).format(written[c]) for c in rules.onto_key)
            )
        )
    selected = [sql.SQL("s.{}").format(written[c]) for c in columns]
    write = sql.SQL(_ONTO_WRITE if onto else _PLAIN_WRITE).format(
        found=sql.SQL("").join(found_columns),
        table=table,
        probes=sql.SQL(" ").join(probes),
        pk=sql.Identifier(_PK),
        ordinal=sql.Identifier(_ORDINAL),
        whole=sql.SQL("WHERE {}").format(sql.SQL(" AND ").join(whole)) if whole else sql.SQL(""),
        target=target,
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        selected=sql.SQL(", ").join(selected),
        returning=sql.SQL('RETURNING "id"' if replicated else ""),
        onto=sql.Identifier(_ONTO),
        drawn=sql.Identifier(_DRAWN),
        landed_kind=sql.Literal(rules.onto_kind),
        saved=sql.SQL(", ").join(
            sql.SQL("{} = s.{}").format(sql.Identifier(c), written[c]) for c in saved
        ),
    )
    # Positions in a COPY row: ordinal, pk, then the columns.
    key_positions = tuple(n for n, c in enumerate(columns, 2) if c in rewritten)
    json_positions = tuple(n for n, c in enumerate(columns, 2) if kinds.get(c) == "json")
    return SetStatements(create, copy, write, key_positions, json_positions, replicated, onto)


def _all_distinct(values: sql.Composable) -> sql.Composed:
    """That no two rows of src share ``values`` (NULLs compared as equal)."""
    return sql.SQL(
        "(SELECT count(*) FROM (SELECT DISTINCT {values} FROM src) AS k) "
        "= (SELECT count(*) FROM src)"
    ).format(values=values)


def copy_rows_of(statements: SetStatements, rows: Sequence[Converted]) -> list[list] | None:
    """The COPY rows of a batch, or None when a foreign key holds something other than
    a pk or None (the per-row path drops such a row; ``is_pk``: a bool is not a pk)."""
    keys, json_at = statements.key_positions, statements.json_positions
    out = []
    for row in rows:
        values = [row.ordinal, row.pk, *row.values.values()]
        for n in keys:
            value = values[n]
            if value is not None and not is_pk(value):
                return None
        for n in json_at:
            values[n] = adapt(values[n], "json")
        out.append(values)
    return out


def write_set_based(
    ctx: WriteContext,
    model: ModelInfo,
    statements: SetStatements,
    copy_rows: list[list],
    after: Callable[[set[int]], None] | None = None,
) -> int | None:
    """Writes a whole batch in one statement, under a savepoint; returns how many rows
    landed on rows the table held (``SetBasedRules.onto_key``), or None (and leaves
    nothing written) when any row needs the per-row path.

    ``after`` gets the ordinals of the rows inserted (not landed on a row the table
    held) and writes what goes beside them, under the same savepoint."""
    cur = ctx.cur
    layout = ctx.layout
    params = {
        "import_uuid": ctx.settings.import_uuid,
        "model": model.name,
        "sequence": layout.id_sequence,
        "kind": INSERTED,
        "stage": model.stage,
    }
    try:
        with cur.connection.transaction():
            cur.execute(statements.create)
            with cur.copy(statements.copy) as copy:
                for values in copy_rows:
                    copy.write_row(values)
            with under_index_planner(cur, statements.write, params) as written:
                if statements.lands:
                    count, ordinals = written.fetchone() or (0, None)
                    inserted = set(ordinals or ())
                else:
                    count, inserted = written.rowcount, set()
                if count != len(copy_rows):
                    raise _NotWholeBatch
                ids = [r[0] for r in written.fetchall()] if statements.returns_ids else []
            if ids:
                write_replicas(ctx, layout.table, ids)
            if after is not None:
                after(inserted)
            landed = count - len(inserted) if statements.lands else 0
    except _NotWholeBatch:
        return None
    except psycopg.Error:
        conn = cur.connection
        if conn.closed or conn.broken:
            raise
        return None
    return landed


def replicated(layout: TableLayout) -> bool:
    """Whether Sentry copies the table's rows into a replica (``write_replicas``)."""
    return layout.table in REPLICAS
