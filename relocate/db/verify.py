"""``relocate verify``: proves that the target holds an export, as one import wrote it.

The export is streamed once (``relocate.io.export_reader``, decrypting as the import does)
and checked in batches of up to ``BATCH_ROWS`` rows of one model: per batch one ledger query
(the batch's rows and the rows its foreign keys name), one target query (the mapped rows,
by id) and, only for rows the ledger lacks, one report query. Memory is bounded by the
batches pending per model, whatever the size of the export.

What each exported row must be:

* **Written** (ledger kind Inserted or Overwrite): the target row the ledger names exists,
  and every column the export gives equals the exported value as the import converted it
  (``relocate.logic.convert``), foreign keys equal to the new pk the ledger maps the
  referenced source pk to. Columns Sentry's rules change on purpose are exempt
  (``relocate.logic.verify.EXEMPT``): a difference there is counted, not failed.
* **Existing** (merged into a row the target held: a user with ``--merge-users``, an
  email address, a config row kept): only the row's existence is checked. Its values are
  the target's own (Sentry keeps the existing row), so comparing them with the export
  would prove nothing about the import. The same holds for a row that several exported
  rows landed on (a repeated user IP or project option, a user email saved onto the
  primary one): the last of them in file order wrote its values, the others are
  checked for existence only.
* **Skipped or dropped**: reported so in ``relocate_report`` under the import (any run).

Anything else is **missing** (no ledger entry and no report, or a ledger entry whose target
row is gone), or **mismatched** (a column differs). **Extra** means a ledger entry of the
import for a source row the export does not hold (same model, pk and ordinal): what the
ledger says the import wrote but the export never had. The export's keys are kept in a
temporary table of the verifying session, so that this is one anti-join at the end.

Identifiers in SQL come from the layouts (the registry and the target's catalog), never
from the export; model names from the file are query parameters only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from relocate.db.catalog import read_catalog
from relocate.db.handler import EXISTING, Handler
from relocate.db.sink import reported_model, reported_pk
from relocate.db.sql_literals import bigint_array, model_array
from relocate.io.export_reader import BadRow, ExportFormatError, Row, iter_export
from relocate.logic.convert import TableLayout, build_layouts
from relocate.logic.verify import EXEMPT, Expected, expect, same_value
from relocate.schemas.registry import Registry

#: Rows of one model checked together (one ledger and one target query).
BATCH_ROWS = 1000
#: Actions of ``relocate_report`` that account for a row the import did not write.
ACCOUNTED_ACTIONS = ("skipped", "dropped")


class VerifyError(RuntimeError):
    """Verify cannot run: the import is unknown to the target."""


@dataclass
class ModelCounts:
    """What verify found for one model.

    Attributes:
        rows: exported rows read.
        matched: written rows whose every column equals the export.
        exempt_only: written rows that differ only in exempt columns.
        existing: rows checked for existence only (merged into a row, see module doc).
        skipped: rows reported skipped or dropped.
        missing: rows neither written nor reported, or whose target row is gone.
        mismatched: written rows with a column that differs.
        extra: ledger entries for rows the export does not hold.
    """

    rows: int = 0
    matched: int = 0
    exempt_only: int = 0
    existing: int = 0
    skipped: int = 0
    missing: int = 0
    mismatched: int = 0
    extra: int = 0

    @property
    def checked(self) -> int:
        """Rows found in the target and checked (fields or existence)."""
        return self.matched + self.exempt_only + self.existing + self.mismatched


@dataclass(frozen=True)
class Problem:
    """One failure: a column that differs, a row missing or extra.

    ``kind`` is ``mismatch``, ``missing`` or ``extra``; ``field`` is the target column
    (``<row>`` for a whole row); ``expected`` and ``found`` are the values, or what was
    expected and found of the row.
    """

    kind: str
    model: str
    source_pk: Any
    field: str
    expected: Any
    found: Any


@dataclass
class VerifyResult:
    """Per-model counts, and how many problems were reported."""

    import_uuid: str
    status: str | None = None
    models: dict[str, ModelCounts] = field(default_factory=dict)
    problems: int = 0

    def counts(self, model: str) -> ModelCounts:
        return self.models.setdefault(model, ModelCounts())

    @property
    def ok(self) -> bool:
        return self.problems == 0


def verify_import(
    conn: psycopg.Connection,
    rows: Iterator[Row | BadRow],
    import_uuid: str,
    registry: Registry,
    field_map: dict[str, dict[str, str]],
    handlers: dict[str, Handler],
    report: Callable[[Problem], None],
    batch_rows: int = BATCH_ROWS,
) -> VerifyResult:
    """Checks that the target holds every exported row as import ``import_uuid`` wrote it.

    Args:
        conn: a connection to the target (its session gets a temporary table).
        rows: the export, streamed (``iter_export``).
        import_uuid: the import (32 hex digits).
        registry: the model registry.
        field_map: model -> {export field: column} (``relocate.db.ddl.field_map``).
        handlers: the import's per-model handlers (for ``null_when_missing``).
        report: called with each problem, as it is found.
        batch_rows: rows of one model checked together.

    Returns:
        The counts; ``ok`` when nothing is missing, mismatched or extra.

    Raises:
        VerifyError: the target has no record of the import.
        ExportFormatError: the export is not a JSON array of rows.
    """
    checker = _Checker(conn, import_uuid, registry, field_map, handlers, report)
    pending: dict[str, list[Row]] = {}
    for item in rows:
        if isinstance(item, BadRow):
            checker.bad_row(item)
            continue
        batch = pending.setdefault(item.model, [])
        batch.append(item)
        if len(batch) >= batch_rows:
            checker.check(pending.pop(item.model))
    for batch in pending.values():
        checker.check(batch)
    checker.find_extra()
    conn.commit()  # drops the temporary table
    return checker.result


class _Checker:
    """One verify run: what it read of the target up front, and the counts so far."""

    def __init__(
        self,
        conn: psycopg.Connection,
        import_uuid: str,
        registry: Registry,
        field_map: dict[str, dict[str, str]],
        handlers: dict[str, Handler],
        report: Callable[[Problem], None],
    ) -> None:
        self.conn = conn
        self.import_uuid = import_uuid
        self.registry = registry
        self.handlers = handlers
        self._report = report
        self.result = VerifyResult(import_uuid)
        cur = conn.cursor()
        row = (
            cur.execute(
                "SELECT status FROM relocate_import WHERE import_uuid = %s", (import_uuid,)
            ).fetchone()
            if _has_table(cur, "relocate_import")
            else None
        )
        if row is None:
            raise VerifyError(f"the target has no import {import_uuid} (relocate_import)")
        self.result.status = row[0]
        self.layouts = build_layouts(registry, field_map, read_catalog(conn))
        self.runs = [
            r[0]
            for r in cur.execute(
                "SELECT DISTINCT run_id FROM relocate_report WHERE import_uuid = %s",
                (import_uuid,),
            )
        ]
        # Target rows several ledger entries of one model share: (model, new_pk) -> the
        # ordinal of the last entry, whose values the row holds (see the module doc). Few
        # (repeated user IPs, project options): held in memory.
        self.shared = {
            (m, n): o
            for m, n, o in cur.execute(
                "SELECT model, new_pk, max(ordinal) FROM relocate_pk_map "
                "WHERE import_uuid = %s GROUP BY model, new_pk HAVING count(*) > 1",
                (import_uuid,),
            )
        }
        cur.execute(
            "CREATE TEMPORARY TABLE relocate_verify_seen "
            "(model text NOT NULL, old_pk bigint NOT NULL, ordinal bigint NOT NULL) "
            "ON COMMIT DROP"
        )

    def problem(self, counts_field: str | None, problem: Problem) -> None:
        if counts_field is not None:
            counts = self.result.counts(problem.model)
            setattr(counts, counts_field, getattr(counts, counts_field) + 1)
        self.result.problems += 1
        self._report(problem)

    def bad_row(self, bad: BadRow) -> None:
        self.result.counts(bad.model).rows += 1
        self.problem(
            "missing",
            Problem("missing", bad.model, bad.pk, "<row>", "a readable row", bad.reason),
        )

    def check(self, rows: list[Row]) -> None:
        model = rows[0].model
        counts = self.result.counts(model)
        counts.rows += len(rows)
        info = self.registry.get(model)
        layout = self.layouts.get(model) if info is not None else None
        keyed = [r for r in rows if _is_pk(r.pk)]
        with self.conn.cursor() as cur:
            if keyed:
                cur.execute(
                    "INSERT INTO relocate_verify_seen (model, old_pk, ordinal) "
                    "SELECT %s, p, o FROM unnest(%s::bigint[], %s::bigint[]) AS t(p, o)",
                    (
                        reported_model(model),
                        bigint_array(r.pk for r in keyed),
                        bigint_array(r.ordinal for r in keyed),
                    ),
                )
            if info is None or layout is None:
                # Not a model the import writes to this target: only a report accounts for it.
                self._accounted(cur, model, rows)
                return
            expected = [expect(r, layout, info) for r in keyed]
            refs = {(model, r.pk) for r in keyed}
            for e in expected:
                if e.converted is not None:
                    for column, fk in layout.foreign_keys:
                        value = e.converted.values.get(column)
                        if _is_pk(value) and not fk.excluded:
                            refs.add((fk.target, value))
            ledger = _ledger(cur, self.import_uuid, refs)
            # The ledger's entry is this row's only with its ordinal: a repeated pk's later
            # rows are skipped (and reported) by the import.
            mine = {
                e.row.ordinal
                for e in expected
                if ledger.get((model, e.row.pk), ())[2:] == (e.row.ordinal,)
            }
            written = [e for e in expected if e.row.ordinal in mine]
            unwritten = [r for r in rows if r.ordinal not in mine]
            self._accounted(cur, model, unwritten)
            found = _target_rows(cur, layout, [ledger[(model, e.row.pk)][0] for e in written])
        for e in written:
            self._compare(e, layout, ledger, found)

    def _accounted(self, cur: psycopg.Cursor, model: str, rows: list[Row]) -> None:
        """Rows without a ledger entry: skipped or dropped per the report, else missing."""
        if not rows:
            return
        reported = set()
        if self.runs:
            reported = {
                (o, p)
                for o, p in cur.execute(
                    "SELECT ordinal, source_pk FROM relocate_report "
                    "WHERE run_id = ANY(%s::uuid[]) AND model = %s "
                    "AND ordinal = ANY(%s::bigint[]) AND action = ANY(%s::text[])",
                    (
                        self.runs,
                        reported_model(model),
                        bigint_array(r.ordinal for r in rows),
                        list(ACCOUNTED_ACTIONS),
                    ),
                )
            }
        counts = self.result.counts(model)
        for row in rows:
            if (row.ordinal, reported_pk(row.pk)) in reported:
                counts.skipped += 1
            else:
                self.problem(
                    "missing",
                    Problem(
                        "missing",
                        model,
                        row.pk,
                        "<row>",
                        "written, skipped or dropped",
                        "no ledger entry and no report",
                    ),
                )

    def _compare(
        self,
        e: Expected,
        layout: TableLayout,
        ledger: dict[tuple[str, int], tuple[int, str, int]],
        found: dict[int, dict[str, Any]],
    ) -> None:
        model, pk = e.row.model, e.row.pk
        counts = self.result.counts(model)
        new_pk, kind, _ = ledger[(model, pk)]
        stored = found.get(new_pk)
        if stored is None:
            self.problem(
                "missing",
                Problem(
                    "missing", model, pk, "<row>", f"{layout.table} id {new_pk}", "no such row"
                ),
            )
            return
        last = self.shared.get((model, new_pk))
        if kind == EXISTING or (last is not None and last != e.row.ordinal):
            counts.existing += 1  # merged into a row: existence only (module doc)
            return
        if e.converted is None:
            self.problem(
                "mismatched",
                Problem("mismatch", model, pk, "<row>", "a row the import converts", e.problem),
            )
            return
        exempt = EXEMPT.get(model, {})
        null_when_missing = self.handlers.get(model, Handler()).null_when_missing
        fks = dict(layout.foreign_keys)
        kinds = {c.column: c.kind for c in layout.columns}
        differs = exempt_differs = False
        for column, value in e.converted.values.items():
            if column in e.unchecked:
                continue
            fk = fks.get(column)
            if fk is not None and value is not None and column not in layout.self_references:
                entry = None if fk.excluded else ledger.get((fk.target, value))
                # As the import rewrote it: the referenced row's new pk, or NULL where the
                # model's rule nulls a reference to a row not imported.
                if entry is not None:
                    value = entry[0]
                elif column in null_when_missing:
                    value = None
                else:  # the import drops such a row: it has no value to compare
                    value = f"{fk.target} pk {value} (not imported)"
                same = value == stored[column]
            else:
                same = same_value(value, stored[column], kinds.get(column, ""))
            if same:
                continue
            if column in exempt:
                exempt_differs = True
                continue
            differs = True
            self.problem(None, Problem("mismatch", model, pk, column, value, stored[column]))
        if differs:
            counts.mismatched += 1
        elif exempt_differs:
            counts.exempt_only += 1
        else:
            counts.matched += 1

    def find_extra(self) -> None:
        """Ledger entries of the import for rows the export does not hold (module doc)."""
        with self.conn.cursor() as cur:
            cur.execute("ANALYZE relocate_verify_seen")
            extra = cur.execute(
                "SELECT m.model, m.old_pk, m.new_pk, m.kind FROM relocate_pk_map m "
                "WHERE m.import_uuid = %s AND NOT EXISTS (SELECT 1 FROM relocate_verify_seen s "
                "WHERE s.model = m.model AND s.old_pk = m.old_pk AND s.ordinal = m.ordinal) "
                "ORDER BY m.model, m.old_pk",
                (self.import_uuid,),
            )
            for model, old_pk, new_pk, kind in extra:
                self.problem(
                    "extra",
                    Problem(
                        "extra",
                        model,
                        old_pk,
                        "<row>",
                        "no such row in the export",
                        f"ledger: {kind} as id {new_pk}",
                    ),
                )


def _is_pk(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _has_table(cur: psycopg.Cursor, name: str) -> bool:
    return cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


def _ledger(
    cur: psycopg.Cursor, import_uuid: str, refs: set[tuple[str, int]]
) -> dict[tuple[str, int], tuple[int, str, int]]:
    """(model, source pk) -> (new pk, kind, ordinal) of the import's ledger entries for
    ``refs``."""
    if not refs:
        return {}
    models, pks = zip(*refs)
    rows = cur.execute(
        "SELECT m.model, m.old_pk, m.new_pk, m.kind, m.ordinal "
        "FROM unnest(%s::text[], %s::bigint[]) AS r(model, old_pk) "
        "JOIN relocate_pk_map m "
        "ON m.import_uuid = %s AND m.model = r.model AND m.old_pk = r.old_pk",
        (model_array(models), bigint_array(pks), import_uuid),
    )
    return {(m, o): (n, k, i) for m, o, n, k, i in rows}


def _target_rows(
    cur: psycopg.Cursor, layout: TableLayout, ids: list[int]
) -> dict[int, dict[str, Any]]:
    """id -> {column: value} of the target rows ``ids`` (columns from the layout)."""
    if not ids:
        return {}
    columns = [c.column for c in layout.columns]
    query = sql.SQL("SELECT {} FROM {} WHERE id = ANY(%s::bigint[])").format(
        sql.SQL(", ").join(map(sql.Identifier, ["id", *columns])), sql.Identifier(layout.table)
    )
    return {r[0]: dict(zip(columns, r[1:])) for r in cur.execute(query, (bigint_array(ids),))}


@contextmanager
def open_export(path: str, decryption: Any | None = None) -> Iterator[Iterator[Row | BadRow]]:
    """The rows of an export, streamed as the import's read step streams them.

    Args:
        path: a local path, ``-`` (standard input) or a URI Beam's ``FileSystems`` reads
            (``gs://``, with the ``[gcp]`` extra).
        decryption: ``relocate.io.crypto.DecryptionSpec`` for an encrypted export.

    Raises:
        ExportFormatError: plain JSON given a key, or a tarball without one.
    """
    import sys

    from relocate.io.crypto import input_kind_error, open_plaintext, read_head

    if path == "-":
        source: Any = sys.stdin.buffer
    elif "://" in path:
        from apache_beam.io.filesystems import FileSystems

        source = FileSystems.open(path, compression_type="uncompressed")
    else:
        source = open(path, "rb")  # noqa: SIM115 - closed below
    try:
        head, stream = read_head(source)
        problem = input_kind_error(head, decrypting=decryption is not None)
        if problem is not None:
            raise ExportFormatError(problem)
        if decryption is not None:
            with open_plaintext(stream, decryption) as plain:
                yield iter_export(plain)
        else:
            yield iter_export(stream)
    finally:
        if path != "-":
            source.close()
