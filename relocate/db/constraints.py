"""The target's constraints, checked against the whole export before the first write.

The field checks of ``relocate.logic.convert`` see one value at a time: types, NOT NULL and
length limits. What they cannot see would otherwise fail only at write time, after earlier
batches committed: a CHECK constraint (``avatar_type >= 0``, a monitor owned by a user
*and* a team), and a unique set repeated inside the export (the same member twice in one
organization, two teams with one slug). PostgreSQL evaluates both, over staging tables:

* per model that has such constraints, an UNLOGGED table of this run holds, for every
  converted row, its ordinal, its source pk and the columns the constraints read, typed as
  the target has them (``stage_rows``: one COPY per batch, so memory does not grow with
  the export, whatever its size);
* once every batch is staged, one query per CHECK constraint (``NOT (<expression>)``) and
  one per unique set (``GROUP BY <key> HAVING count(*) > 1``) name the rows that break
  them (``find_violations``), and the staging tables are dropped.

Expressions, predicates, column names and types come from the target's catalog, never
from the export; values travel only as COPY data. Foreign keys hold source pks: two rows
with the same source (organization, user) collide after remapping too. Unique sets whose
duplicates a model's rules resolve (usernames renamed, config rows kept or overwritten,
tokens regenerated: ``Handler.resolves_uniques``) are not checked. Unique sets against
rows already in the target are the rules' business too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from relocate.db.handler import Finding, Handler, adapt
from relocate.db.run_tables import staging_table
from relocate.logic.convert import PackedBatch, TableLayout

#: Rows named per constraint; the last finding says how many more there are.
MAX_FINDINGS_PER_CONSTRAINT = 100

_ORDINAL = "?ordinal"
_PK = "?pk"
_COPY_LINE = re.compile(r"COPY \S+, line (\d+)")
# String literals (skipped), quoted identifiers, plain identifiers.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"((?:[^\"]|\"\")+)\"|([A-Za-z_][A-Za-z0-9_$]*)")
_CHECK = re.compile(r"^CHECK\s*(.*?)(\s+NOT VALID)?(\s+NO INHERIT)?$", re.DOTALL)


def referenced_columns(expression: str, columns: Iterable[str]) -> tuple[str, ...]:
    """Columns of the table that an SQL expression names, in table order.

    A word that is both a column and a function name counts as the column: staging one
    column too many costs nothing.
    """
    names: set[str] = set()
    for match in _TOKENS.finditer(expression):
        quoted, plain = match.group(1), match.group(2)
        if quoted is not None:
            names.add(quoted.replace('""', '"'))
        elif plain is not None:
            names.add(plain.lower())
    return tuple(c for c in columns if c in names)


@dataclass(frozen=True)
class CheckRule:
    """A CHECK constraint: ``expression`` is the boolean SQL, without ``CHECK``."""

    name: str
    definition: str  # as pg_get_constraintdef prints it, for messages
    expression: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class UniqueRule:
    """A unique constraint or index: ``keys`` holds SQL, a quoted column or an expression."""

    name: str
    labels: tuple[str, ...]  # the key as the catalog lists it, for messages
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    predicate: str | None
    nulls_not_distinct: bool


@dataclass(frozen=True)
class StagedColumn:
    name: str
    type: str
    default: str | None  # the target's default, when it draws no sequence value
    kind: str  # the layout's value kind ("" for a column the export never fills)


@dataclass(frozen=True)
class ModelConstraints:
    """What is checked of one model's rows, and where they are staged."""

    model: str
    table: str
    stage_table: str
    columns: tuple[StagedColumn, ...]
    checks: tuple[CheckRule, ...]
    uniques: tuple[UniqueRule, ...]
    foreign_keys: frozenset[str]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def plan_constraints(
    catalog: object,
    layouts: Mapping[str, TableLayout | None],
    handlers: Mapping[str, Handler],
    run_id: str,
) -> dict[str, ModelConstraints]:
    """The constraints to check per model, read from the target's catalog.

    Args:
        catalog: the target's ``relocate.db.catalog.Catalog``.
        layouts: model -> table layout (None: the target lacks the table).
        handlers: model -> its rules (for the unique sets they resolve themselves).
        run_id: this run's id; names the staging tables, so concurrent runs never share.

    Returns:
        model -> its plan, for the models with at least one constraint to check.
    """
    plans: dict[str, ModelConstraints] = {}
    for model in sorted(layouts):
        layout = layouts[model]
        if layout is None:
            continue
        table = catalog.table(layout.table)  # type: ignore[attr-defined]
        if table is None:
            continue
        all_columns = table.column_names
        checks = []
        for check in table.checks:
            match = _CHECK.match(check.expression.strip())
            if match is None:
                continue
            expression = match.group(1)
            checks.append(
                CheckRule(
                    check.name,
                    check.expression,
                    expression,
                    referenced_columns(expression, all_columns),
                )
            )
        resolved = {frozenset(s) for s in getattr(handlers.get(model), "resolves_uniques", ())}
        uniques = []
        key_sets = []
        if table.primary_key:
            key_sets.append((f"{table.name}_pkey", table.primary_key, None, False))
        key_sets += [(u.name, u.columns, u.predicate, u.nulls_not_distinct) for u in table.uniques]
        for name, keys, predicate, nulls_not_distinct in key_sets:
            columns = set()
            sql_keys = []
            for key in keys:
                if key in all_columns:
                    columns.add(key)
                    sql_keys.append(sql.Identifier(key).as_string(None))
                else:
                    columns.update(referenced_columns(key, all_columns))
                    sql_keys.append(f"({key})")
            if predicate is not None:
                columns.update(referenced_columns(predicate, all_columns))
            # Ids are drawn afresh; a set the rules resolve is theirs (renamed, merged, new
            # values); a key with no column of the table cannot be checked here.
            if "id" in columns or not columns or frozenset(columns) in resolved:
                continue
            if frozenset(referenced_columns(" ".join(keys), all_columns)) in resolved:
                continue
            uniques.append(
                UniqueRule(
                    name,
                    tuple(keys),
                    tuple(sql_keys),
                    tuple(c for c in all_columns if c in columns),
                    predicate,
                    nulls_not_distinct,
                )
            )
        if not checks and not uniques:
            continue
        needed = {c for rule in (*checks, *uniques) for c in rule.columns}
        kinds = {c.column: c.kind for c in layout.columns}
        staged = tuple(
            StagedColumn(
                info.name,
                info.type,
                info.default
                if info.default is not None and "nextval(" not in info.default
                else None,
                kinds.get(info.name, ""),
            )
            for info in table.columns
            if info.name in needed and not info.generated
        )
        plans[model] = ModelConstraints(
            model=model,
            table=table.name,
            stage_table=staging_table(run_id, len(plans)),
            columns=staged,
            checks=tuple(checks),
            uniques=tuple(uniques),
            foreign_keys=frozenset(c for c, _ in layout.foreign_keys),
        )
    return plans


# ---------------------------------------------------------------------------------------
# Staging


def create_staging(cur: psycopg.Cursor, plan: ModelConstraints) -> None:
    """Creates the model's staging table if this run has none yet (concurrent writers
    take turns on an advisory lock, so only one creates it)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (plan.stage_table,))
    columns = [
        sql.SQL("{} bigint NOT NULL").format(sql.Identifier(_ORDINAL)),
        sql.SQL("{} bigint NOT NULL").format(sql.Identifier(_PK)),
    ]
    for col in plan.columns:
        default = (
            sql.SQL(" DEFAULT {}").format(sql.SQL(col.default)) if col.default else sql.SQL("")
        )
        columns.append(
            sql.SQL("{} {}{}").format(sql.Identifier(col.name), sql.SQL(col.type), default)
        )
    cur.execute(
        sql.SQL("CREATE UNLOGGED TABLE IF NOT EXISTS {} ({})").format(
            sql.Identifier(plan.stage_table), sql.SQL(", ").join(columns)
        )
    )


def drop_staging(conn: psycopg.Connection, plans: Iterable[ModelConstraints]) -> None:
    """Drops this run's staging tables (those that were created)."""
    names = [sql.Identifier(p.stage_table) for p in plans]
    if names:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(", ").join(names)))
        conn.commit()


def stage_rows(
    conn: psycopg.Connection, plan: ModelConstraints, batch: PackedBatch, created: set[str]
) -> tuple[int, list[Finding]]:
    """COPYs a converted batch's constrained columns into the model's staging table.

    A value the target's column type rejects (one the field checks let through) becomes a
    finding naming its row, and the batch is staged without it.

    Args:
        conn: a connection not in a transaction.
        plan: the model's constraints.
        batch: a packed batch of the model's converted rows.
        created: staging tables known to exist (updated).

    Returns:
        The rows staged, and the findings.
    """
    model, groups = batch
    findings: list[Finding] = []
    pending = [(columns, list(rows)) for columns, rows in groups]
    while True:
        copying = 0
        try:
            with conn.transaction(), conn.cursor() as cur:
                if plan.stage_table not in created:
                    create_staging(cur, plan)
                for index, (columns, rows) in enumerate(pending):
                    copying = index  # the group an error belongs to
                    _copy_group(cur, plan, columns, rows)
            created.add(plan.stage_table)
            return sum(len(rows) for _, rows in pending), findings
        except psycopg.DataError as exc:
            # Each group is one COPY; the error names the line of the one that failed.
            match = _COPY_LINE.search(exc.diag.context or "")
            rows = pending[copying][1]
            line = int(match.group(1)) - 1 if match else -1
            if not 0 <= line < len(rows):
                raise
            ordinal, pk = rows.pop(line)[:2]
            findings.append(
                Finding(
                    "ValidationError",
                    model,
                    ordinal,
                    pk,
                    f"the target's {plan.table} cannot hold the row: "
                    f"{exc.diag.message_primary or exc}",
                )
            )


def _copy_group(
    cur: psycopg.Cursor, plan: ModelConstraints, columns: Sequence[str], rows: list[tuple]
) -> None:
    positions = {c: i for i, c in enumerate(columns)}
    present = [c for c in plan.columns if c.name in positions]
    names = [_ORDINAL, _PK, *(c.name for c in present)]
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(plan.stage_table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    picks = [(positions[c.name] + 2, c.kind) for c in present]
    with cur.copy(query) as copy:
        for packed in rows:
            copy.write_row([packed[0], packed[1], *(adapt(packed[i], k) for i, k in picks)])


# ---------------------------------------------------------------------------------------
# Evaluation


def _ident(name: str) -> sql.Composable:
    return sql.Identifier(name)


_UNQUOTED_TYPES = (
    "smallint",
    "integer",
    "bigint",
    "numeric",
    "real",
    "double precision",
    "boolean",
)


def _values_text(
    columns: Sequence[str], values: Sequence[str | None], types: Mapping[str, str]
) -> str:
    """``col = value, ...`` as SQL literals (text quoted, cut at 80 characters)."""
    parts = []
    for column, value in zip(columns, values, strict=True):
        if value is None:
            shown = "NULL"
        else:
            if len(value) > 80:
                value = value[:77] + "..."
            unquoted = types.get(column, "").startswith(_UNQUOTED_TYPES)
            shown = value if unquoted else "'" + value.replace("'", "''") + "'"
        parts.append(f"{column} = {shown}")
    return ", ".join(parts)


def _more(total: int, shown: int, model: str) -> str:
    if total <= shown:
        return ""
    return f" (and {total - shown} more rows of {model} break it)"


def find_violations(conn: psycopg.Connection, plan: ModelConstraints) -> Iterator[Finding]:
    """Names the staged rows of one model that break a CHECK or repeat a unique key.

    Reads only. The first row of a repeated key (in file order) is the one the others are
    named against; rows that repeat the first one's pk are skipped by the writer anyway
    (a duplicate pk), so they are not named.
    """
    stage = _ident(plan.stage_table)
    limit = MAX_FINDINGS_PER_CONSTRAINT
    types = {c.name: c.type for c in plan.columns}
    if conn.execute("SELECT to_regclass(%s)", (plan.stage_table,)).fetchone()[0] is None:
        conn.commit()
        return  # no row of the model was staged
    for check in plan.checks:
        shown = (
            sql.SQL(", ").join(sql.SQL("{}::text").format(_ident(c)) for c in check.columns)
            if check.columns
            else sql.SQL("NULL::text")
        )
        query = sql.SQL(
            "SELECT o, p, count(*) OVER (), v FROM ("
            " SELECT DISTINCT ON ({ord}) {ord} AS o, {pk} AS p, ARRAY[{shown}] AS v"
            " FROM {stage} WHERE NOT ({expr}) ORDER BY {ord}) AS bad"
            " ORDER BY o LIMIT {limit}"
        ).format(
            ord=_ident(_ORDINAL),
            pk=_ident(_PK),
            shown=shown,
            stage=stage,
            expr=sql.SQL(check.expression),
            limit=sql.Literal(limit),
        )
        rows = conn.execute(query).fetchall()
        for n, (ordinal, pk, total, values) in enumerate(rows, 1):
            with_values = (
                f", with {_values_text(check.columns, values, types)}" if check.columns else ""
            )
            yield Finding(
                "ValidationError",
                plan.model,
                ordinal,
                pk,
                f"check constraint {check.name} of {plan.table} fails: "
                f"{check.definition}{with_values}"
                + (_more(total, len(rows), plan.model) if n == len(rows) else ""),
            )
    for unique in plan.uniques:
        keys = sql.SQL(", ").join(map(sql.SQL, unique.keys))
        conditions = [sql.SQL("({})").format(sql.SQL(unique.predicate))] if unique.predicate else []
        if not unique.nulls_not_distinct:
            conditions += [sql.SQL("({}) IS NOT NULL").format(sql.SQL(k)) for k in unique.keys]
        where = sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("TRUE")
        repeated = (
            sql.SQL("TRUE")
            if unique.nulls_not_distinct
            else sql.SQL(
                "({keys}) IN (SELECT {keys} FROM {stage} WHERE {where} "
                "GROUP BY {keys} HAVING count(*) > 1)"
            ).format(keys=keys, stage=stage, where=where)
        )
        shown = sql.SQL(", ").join(sql.SQL("({})::text").format(sql.SQL(k)) for k in unique.keys)
        query = sql.SQL(
            "SELECT o, p, fo, fp, count(*) OVER (), v FROM ("
            " SELECT DISTINCT ON (o) * FROM ("
            "  SELECT {ord} AS o, {pk} AS p, first_value({ord}) OVER w AS fo,"
            "   first_value({pk}) OVER w AS fp, ARRAY[{shown}] AS v"
            "  FROM {stage} WHERE {where} AND {repeated}"
            "  WINDOW w AS (PARTITION BY {keys} ORDER BY {ord})) AS keyed"
            " WHERE p <> fp ORDER BY o) AS dup ORDER BY o LIMIT {limit}"
        ).format(
            ord=_ident(_ORDINAL),
            pk=_ident(_PK),
            shown=shown,
            stage=stage,
            where=where,
            repeated=repeated,
            keys=keys,
            limit=sql.Literal(limit),
        )
        rows = conn.execute(query).fetchall()
        fks = [c for c in unique.columns if c in plan.foreign_keys]
        note = f" ({', '.join(fks)} as pks of the export)" if fks else ""
        for n, (ordinal, pk, first, first_pk, total, values) in enumerate(rows, 1):
            yield Finding(
                "ValidationError",
                plan.model,
                ordinal,
                pk,
                f"unique constraint {unique.name} ({', '.join(unique.labels)}) of "
                f"{plan.table}: row {first} (pk {first_pk}) of {plan.model} has the same "
                f"{_values_text(unique.labels, values, types)}{note}"
                + (_more(total, len(rows), plan.model) if n == len(rows) else ""),
            )
    conn.commit()
