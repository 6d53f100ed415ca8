"""From export fields to target columns: mapping, type conversion and validation.

A ``TableLayout`` joins what the registry knows of a model (its foreign keys), the field
-> column map of the schema (``tables.json``: most fields are ``x`` or ``x_id``, some are
not, e.g. ``sentry.user.name`` is the column ``first_name``) and what the target database
really has (the catalog). Only columns found there are ever written, under the catalog's
own names: field names from the export never reach SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

from relocate.io.export_reader import Row
from relocate.logic.values import ValueProblem, column_kind, value_converter
from relocate.schemas.registry import ForeignKey, Registry


class RowInvalid(ValueError):
    """A row that cannot be imported: becomes a ValidationError finding."""


class Converted(NamedTuple):
    """A row whose fields are mapped to target columns and converted.

    ``values`` maps column -> value; foreign-key columns still hold the *source* pk.
    """

    model: str
    ordinal: int
    pk: int
    values: dict[str, Any]


#: A batch of converted rows of one model as it crosses Beam: ``(model, groups)``, each
#: group ``(columns, [(ordinal, pk, value, ...), ...])`` holding the rows that have exactly
#: those columns (a missing column takes the table's default, so it is not a None).
#: Column names travel once per group rather than once per row: half the bytes.
PackedBatch = tuple[str, list[tuple[tuple[str, ...], list[tuple]]]]


def pack_converted(model: str, rows: list[Converted]) -> PackedBatch:
    """Packs converted rows of one model for Beam (see ``PackedBatch``)."""
    groups: dict[tuple[str, ...], list[tuple]] = {}
    for row in rows:
        values = row.values
        groups.setdefault(tuple(values), []).append((row.ordinal, row.pk, *values.values()))
    return (model, list(groups.items()))


def unpack_converted(batch: PackedBatch) -> list[Converted]:
    """The converted rows of a packed batch, in the order they were packed per group."""
    model, groups = batch
    make = tuple.__new__  # Converted's own __new__ is Python code: a third of the time
    return [
        make(Converted, (model, packed[0], packed[1], dict(zip(columns, packed[2:]))))
        for columns, rows in groups
        for packed in rows
    ]


#: What a null becomes in a column (``TableLayout.converters``): a NULL, the column's
#: default (the column is left out), or a finding.
KEEP_NULL, TAKE_DEFAULT, REFUSE_NULL = 0, 1, 2


@dataclass(frozen=True)
class ColumnLayout:
    field: str
    column: str
    kind: str
    nullable: bool
    has_default: bool


@dataclass(frozen=True)
class TableLayout:
    """How one model's rows become rows of its target table."""

    model: str
    table: str
    columns: tuple[ColumnLayout, ...]
    foreign_keys: tuple[tuple[str, ForeignKey], ...]  # (column, fk)
    id_sequence: str | None
    self_references: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to every DoFn that writes or converts: the lookup is rebuilt there.
        cached = ("by_field", "converters", "required", "rewritten_keys")
        return {k: v for k, v in self.__dict__.items() if k not in cached}

    @cached_property
    def by_field(self) -> dict[str, ColumnLayout]:
        """Export field -> column (built once per layout, not once per row)."""
        return {c.field: c for c in self.columns}

    @cached_property
    def converters(self) -> dict[str, tuple[str, Callable[[Any], Any], int]]:
        """Export field -> (column, its ``value_converter``, what a null becomes: one of
        ``KEEP_NULL``, ``TAKE_DEFAULT``, ``REFUSE_NULL``), built once per layout."""
        return {
            c.field: (
                c.column,
                value_converter(c.kind),
                KEEP_NULL if c.nullable else TAKE_DEFAULT if c.has_default else REFUSE_NULL,
            )
            for c in self.columns
        }

    @cached_property
    def required(self) -> tuple[tuple[str, str], ...]:
        """(field, column) of the columns that are NOT NULL without a default."""
        return tuple(
            (c.field, c.column) for c in self.columns if not c.nullable and not c.has_default
        )

    @cached_property
    def rewritten_keys(self) -> tuple[tuple[str, str, bool, str], ...]:
        """``(column, target model, excluded, field)`` of each foreign key a write
        rewrites; self references are left to the fix-up after the stage."""
        return tuple(
            (column, fk.target, fk.excluded, fk.field)
            for column, fk in self.foreign_keys
            if column not in self.self_references
        )

    def column(self, name: str) -> ColumnLayout | None:
        for col in self.columns:
            if col.column == name:
                return col
        return None


def build_layouts(
    registry: Registry, field_map: dict[str, dict[str, str]], catalog: Any
) -> dict[str, TableLayout | None]:
    """Builds the layout of every model; None for models whose table the target lacks.

    Args:
        registry: the model registry.
        field_map: model -> {export field: column}, from the schema (``tables.json``).
        catalog: the target's catalog (``relocate.db.catalog.Catalog``).
    """
    layouts: dict[str, TableLayout | None] = {}
    for model in registry.models:
        table = catalog.table(model.table)
        if table is None:
            layouts[model.name] = None
            continue
        fields = dict(field_map.get(model.name, {}))
        for fk in model.foreign_keys:
            fields.setdefault(fk.field, fk.column)
        columns = []
        for field, column in sorted(fields.items()):
            info = table.column(column)
            if info is None or column == "id":
                continue
            columns.append(
                ColumnLayout(
                    field=field,
                    column=info.name,
                    kind=column_kind(info.type),
                    nullable=info.nullable,
                    has_default=info.default is not None,
                )
            )
        by_column = {c.column for c in columns}
        fks = tuple((fk.column, fk) for fk in model.foreign_keys if fk.column in by_column)
        layouts[model.name] = TableLayout(
            model=model.name,
            table=table.name,
            columns=tuple(columns),
            foreign_keys=fks,
            id_sequence=table.id_sequence,
            self_references=tuple(c for c in model.self_references if c in by_column),
        )
    return layouts


def convert_row(row: Row, layout: TableLayout) -> Converted:
    """Maps and converts one row's fields.

    Fields the target lacks (removed fields of older exports, unknown fields) are
    ignored, as Sentry ignores them. Foreign keys are left as source pks.

    Raises:
        RowInvalid: a value the column cannot hold, named by field.
    """
    values: dict[str, Any] = {}
    converters = layout.converters
    for field, value in row.fields.items():
        found = converters.get(field)
        if found is None:
            continue
        column, convert, null = found
        if value is not None:
            try:
                value = convert(value)
            except ValueProblem as exc:
                raise RowInvalid(f"field `{field}`: {exc}") from None
            if value is not None:
                values[column] = value
                continue
        if null == KEEP_NULL:
            values[column] = None
        elif null == REFUSE_NULL:
            raise RowInvalid(f"field `{field}` may not be null")
        # TAKE_DEFAULT: an explicit null where Sentry has a default lets the default apply.
    return _converted(Converted, (row.model, row.ordinal, row.pk, values))


#: Converted's own ``__new__`` is Python code; a row is built once per exported row.
_converted = tuple.__new__


def missing_required(layout: TableLayout, values: dict[str, Any]) -> list[str]:
    """Fields whose columns are NOT NULL without a default and absent from the row."""
    return [field for field, column in layout.required if column not in values]
