"""What the target database really has, read from ``pg_catalog``.

The sink writes into whatever the target is: relocate's own schema (``ddl.create_schema``)
or a real Sentry database, whose tables may have more or fewer columns, identity instead of
serial ids, citext instead of text. ``read_catalog`` reads, for every table of one schema,
the columns, primary key, unique constraints and unique indexes, foreign keys, checks and
the id sequence, with one query per kind of object (not per table), so it is as fast on a
Sentry database with hundreds of tables as on ours.

The result is made of frozen dataclasses holding tuples: immutable and picklable, so a
``Catalog`` can travel inside a DoFn to Dataflow workers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

import psycopg


@dataclass(frozen=True)
class ColumnInfo:
    """One column of a table.

    Attributes:
        name: column name.
        type: the type as ``format_type`` prints it (``character varying(128)``, ``text[]``).
        element_type: for an array column, its element type (``text``); else None.
        nullable: False when the column is NOT NULL.
        default: the default expression (``now()``, ``nextval('x_id_seq'::regclass)``) or None.
        identity: ``"always"`` or ``"by default"`` for an identity column, else None.
        generated: True for a generated (computed) column, which cannot be written.
        position: the column's attribute number (1-based, gaps after dropped columns).
    """

    name: str
    type: str
    element_type: str | None
    nullable: bool
    default: str | None
    identity: str | None
    generated: bool
    position: int

    @property
    def optional(self) -> bool:
        """Whether an INSERT may omit the column (a default, identity, or nullable)."""
        return self.default is not None or self.identity is not None or self.nullable


@dataclass(frozen=True)
class UniqueInfo:
    """A unique constraint or a unique index that backs no constraint.

    Attributes:
        name: constraint or index name.
        columns: the key, one entry per key position: a column name, or the expression
            text for an expression key (e.g. ``lower((email)::text)``).
        constraint: True for a UNIQUE constraint, False for a bare unique index.
        predicate: the WHERE clause of a partial unique index, else None.
        expression: True when any key position is an expression.
        deferrable: True for a DEFERRABLE constraint (not usable as ON CONFLICT arbiter).
        nulls_not_distinct: True when NULLs collide (PostgreSQL >= 15 NULLS NOT DISTINCT).
    """

    name: str
    columns: tuple[str, ...]
    constraint: bool
    predicate: str | None = None
    expression: bool = False
    deferrable: bool = False
    nulls_not_distinct: bool = False


@dataclass(frozen=True)
class ForeignKeyInfo:
    """A FOREIGN KEY constraint."""

    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]
    deferrable: bool
    initially_deferred: bool


@dataclass(frozen=True)
class CheckInfo:
    """A CHECK constraint (``expression`` as ``pg_get_constraintdef`` prints it)."""

    name: str
    expression: str


@dataclass(frozen=True)
class TableInfo:
    """One table: columns in attribute order and its keys."""

    schema: str
    name: str
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...] = ()
    uniques: tuple[UniqueInfo, ...] = ()
    foreign_keys: tuple[ForeignKeyInfo, ...] = ()
    checks: tuple[CheckInfo, ...] = ()
    #: column -> sequence (schema-qualified, quoted as pg_get_serial_sequence returns it)
    sequences: tuple[tuple[str, str], ...] = ()

    @cached_property
    def _by_name(self) -> dict[str, ColumnInfo]:
        return {c.name: c for c in self.columns}

    def column(self, name: str) -> ColumnInfo | None:
        """The column called ``name``, or None."""
        return self._by_name.get(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def sequence(self, column: str) -> str | None:
        """The sequence feeding ``column`` (serial or identity), as pg_get_serial_sequence."""
        return dict(self.sequences).get(column)

    @property
    def id_sequence(self) -> str | None:
        """The sequence of the primary key column ``id`` (or of a one-column primary key)."""
        if len(self.primary_key) == 1:
            return self.sequence(self.primary_key[0])
        return self.sequence("id")

    def unique_sets(self, *, include_partial: bool = False) -> list[tuple[str, ...]]:
        """Column sets that are unique: primary key first, then plain-column uniques.

        Expression keys are left out; partial indexes only with ``include_partial``.
        """
        sets = [self.primary_key] if self.primary_key else []
        for u in self.uniques:
            if u.expression or (u.predicate is not None and not include_partial):
                continue
            sets.append(u.columns)
        return sets

    def foreign_key_for(self, column: str) -> ForeignKeyInfo | None:
        """The single-column foreign key on ``column``, or None."""
        for fk in self.foreign_keys:
            if fk.columns == (column,):
                return fk
        return None


@dataclass(frozen=True)
class Catalog:
    """The tables of one schema."""

    schema: str
    tables: tuple[TableInfo, ...]
    server_version: int = 0  # server_version_num, e.g. 150004

    @cached_property
    def _by_name(self) -> dict[str, TableInfo]:
        return {t.name: t for t in self.tables}

    def table(self, name: str) -> TableInfo | None:
        """The table called ``name``, or None."""
        return self._by_name.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)


# Ordinary and partitioned tables of the schema (by exact name: no identifier folding).
_TABLES_FILTER = (
    "c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s)"
    " AND c.relkind IN ('r', 'p')"
)

_COLUMNS_SQL = f"""
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
       CASE WHEN t.typcategory = 'A' THEN format_type(t.typelem, a.atttypmod) END,
       NOT a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
       a.attnum
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE {_TABLES_FILTER}
ORDER BY c.relname, a.attnum
"""

_CONSTRAINTS_SQL = f"""
SELECT c.relname, k.conname, k.contype,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY AS u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
       rn.nspname, rc.relname,
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY AS u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i),
       k.condeferrable, k.condeferred,
       CASE WHEN k.contype = 'c' THEN pg_get_constraintdef(k.oid, true) END,
       COALESCE({{nulls}}, false)
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
LEFT JOIN pg_class rc ON rc.oid = k.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = k.conindid AND k.contype IN ('p', 'u')
WHERE {_TABLES_FILTER} AND k.contype IN ('p', 'u', 'f', 'c')
ORDER BY c.relname, k.conname
"""

# Unique indexes that back no constraint (partial, expression, or created as bare indexes).
_UNIQUE_INDEXES_SQL = f"""
SELECT c.relname, ic.relname,
       ARRAY(SELECT CASE WHEN i.indkey[k - 1] = 0
                         THEN pg_get_indexdef(i.indexrelid, k, true)
                         ELSE (SELECT a.attname::text FROM pg_attribute a
                               WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[k - 1])
                    END
             FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k),
       0 = ANY (i.indkey::int2[]), pg_get_expr(i.indpred, i.indrelid, true),
       {{nulls}}
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE {_TABLES_FILTER} AND i.indisunique AND NOT i.indisprimary AND i.indisvalid
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY c.relname, ic.relname
"""

# Sequences owned by a column: serial ('a'uto dependency) or identity ('i'nternal).
_SEQUENCES_SQL = f"""
SELECT c.relname, a.attname, quote_ident(sn.nspname) || '.' || quote_ident(s.relname)
FROM pg_class s
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
     AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
JOIN pg_class c ON c.oid = d.refobjid
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
WHERE s.relkind = 'S' AND {_TABLES_FILTER}
ORDER BY c.relname, a.attname
"""

_IDENTITY = {"a": "always", "d": "by default"}


def read_catalog(conn: psycopg.Connection, schema: str = "public") -> Catalog:
    """Reads the tables of ``schema`` as the database has them.

    Args:
        conn: an open connection (only reads; autocommit or inside a transaction).
        schema: the schema to read.

    Returns:
        A ``Catalog`` with one ``TableInfo`` per ordinary or partitioned table, sorted by name.
        An unknown schema gives an empty catalog.
    """
    params = {"schema": schema}
    version = conn.info.server_version
    exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    if exists is None:
        return Catalog(schema=schema, tables=(), server_version=version)

    columns: dict[str, list[ColumnInfo]] = defaultdict(list)
    for rel, name, typ, elem, nullable, default, ident, gen, num in conn.execute(
        _COLUMNS_SQL, params
    ):
        columns[rel].append(
            ColumnInfo(
                name=name,
                type=typ,
                element_type=elem,
                nullable=nullable,
                default=default,
                identity=_IDENTITY.get(ident or ""),
                generated=bool(gen),
                position=num,
            )
        )

    primary: dict[str, tuple[str, ...]] = {}
    uniques: dict[str, list[UniqueInfo]] = defaultdict(list)
    fks: dict[str, list[ForeignKeyInfo]] = defaultdict(list)
    checks: dict[str, list[CheckInfo]] = defaultdict(list)
    # indnullsnotdistinct exists from PostgreSQL 15 on.
    nulls = "i.indnullsnotdistinct" if version >= 150000 else "false"
    for row in conn.execute(_CONSTRAINTS_SQL.format(nulls=nulls), params):
        rel, name, kind, cols, ref_schema, ref_table, ref_cols, deferrable, deferred = row[:9]
        check_def, nulls_not_distinct = row[9], row[10]
        if kind == "p":
            primary[rel] = tuple(cols)
        elif kind == "u":
            uniques[rel].append(
                UniqueInfo(
                    name=name,
                    columns=tuple(cols),
                    constraint=True,
                    deferrable=deferrable,
                    nulls_not_distinct=nulls_not_distinct,
                )
            )
        elif kind == "f":
            fks[rel].append(
                ForeignKeyInfo(
                    name=name,
                    columns=tuple(cols),
                    ref_schema=ref_schema,
                    ref_table=ref_table,
                    ref_columns=tuple(ref_cols),
                    deferrable=deferrable,
                    initially_deferred=deferred,
                )
            )
        else:
            checks[rel].append(CheckInfo(name=name, expression=check_def))

    for rel, name, keys, has_expr, predicate, nnd in conn.execute(
        _UNIQUE_INDEXES_SQL.format(nulls=nulls), params
    ):
        uniques[rel].append(
            UniqueInfo(
                name=name,
                columns=tuple(keys),
                constraint=False,
                predicate=predicate,
                expression=has_expr,
                nulls_not_distinct=nnd,
            )
        )

    sequences: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for rel, col, seq in conn.execute(_SEQUENCES_SQL, params):
        sequences[rel].append((col, seq))

    tables = tuple(
        TableInfo(
            schema=schema,
            name=rel,
            columns=tuple(cols),
            primary_key=primary.get(rel, ()),
            uniques=tuple(uniques.get(rel, ())),
            foreign_keys=tuple(fks.get(rel, ())),
            checks=tuple(checks.get(rel, ())),
            sequences=tuple(sequences.get(rel, ())),
        )
        for rel, cols in sorted(columns.items())
    )
    return Catalog(schema=schema, tables=tables, server_version=version)


__all__ = [
    "Catalog",
    "CheckInfo",
    "ColumnInfo",
    "ForeignKeyInfo",
    "TableInfo",
    "UniqueInfo",
    "read_catalog",
]
