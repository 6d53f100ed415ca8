"""``WriteStage``: writes one stage's rows to PostgreSQL in batches, one model per batch.

The DoFn buffers rows per model and flushes a batch through ``BatchWriter`` every
``batch_size`` rows (a DirectRunner bundle can be a whole partition, so waiting for
``finish_bundle`` would hold it all). It waits for its ``gate`` side input
(``relocate.beam.gate``), which is complete only once the previous stage has finished
writing. A gate that holds a failure means the import already failed: nothing more is
written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import psycopg
from apache_beam.transforms.window import GlobalWindows

from relocate.beam.gate import any_failed, wait_for
from relocate.db.connection_cap import Backoff, open_connection
from relocate.db.faults import InjectedFault
from relocate.db.held import HeldRef, take
from relocate.db.sink import BatchResult, BatchWriter, write_reports
from relocate.db.target import TargetLike
from relocate.db.target import connect as open_target
from relocate.logic.convert import Converted, TableLayout, unpack_converted
from relocate.logic.settings import ImportSettings
from relocate.schemas.registry import Registry

log = logging.getLogger("relocate.write")

#: Attempts per batch before the failure is left to the runner (which retries bundles).
WRITE_ATTEMPTS = 3


def connect(target: TargetLike) -> psycopg.Connection:
    """Opens a write connection; credentials are resolved here, in the worker."""
    conn = open_target(target, autocommit=False, application_name="relocate")
    conn.execute("SET statement_timeout = 0")
    conn.commit()
    return conn


class _PostgresFn(beam.DoFn):
    """A DoFn with at most one connection to the target, opened in the worker, reopened
    if lost.

    Under ``--max-db-connections`` the connection is held only with one of the import's
    connection slots (``relocate.db.connection_cap``) and is given back at the end of
    every bundle, so that an idle DoFn instance never keeps a slot from a busy one.
    """

    _settings: ImportSettings

    def setup(self) -> None:
        self._conn: psycopg.Connection | None = None

    def connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = open_connection(
                lambda: connect(self._settings),
                import_uuid=self._settings.import_uuid,
                cap=self._settings.max_db_connections,
            )
        return self._conn

    def release_connection(self) -> None:
        """Ends a bundle: under a connection cap, gives the connection (and slot) back."""
        if self._settings.max_db_connections:
            self.drop_connection()

    def drop_connection(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def teardown(self) -> None:
        if getattr(self, "_conn", None) is not None:
            self.drop_connection()


@dataclass(eq=False)
class _WriteStageFn(_PostgresFn):
    _stage: int
    _registry: Registry
    _settings: ImportSettings
    _layouts: dict[str, TableLayout | None]

    def __post_init__(self) -> None:
        super().__init__()

    def setup(self) -> None:
        from relocate.logic.rules import build_handlers

        super().setup()
        self._handlers = build_handlers()
        self._batch_writer: BatchWriter | None = None

    def _writer(self) -> BatchWriter:
        conn = self.connection()
        if self._batch_writer is None or self._batch_writer.conn is not conn:
            self._batch_writer = BatchWriter(
                conn, self._settings, self._registry, self._layouts, self._handlers
            )
        return self._batch_writer

    def start_bundle(self) -> None:
        self._buffers: dict[str, list[Converted]] = {}
        self._failed: bool | None = None

    def process(self, ref: HeldRef, *gate: Iterable[Any]) -> Iterator[int]:
        if self._failed is None:
            self._failed = any_failed(gate)
        if self._failed:
            return  # an earlier finding or failed batch aborted the import
        batch = take(self.connection(), self._settings.run_id, ref)
        model = batch[0]
        buffer = self._buffers.setdefault(model, [])
        buffer.extend(unpack_converted(batch))
        size = self._settings.batch_size
        while len(buffer) >= size:
            rows, buffer[:] = buffer[:size], buffer[size:]
            yield from self._flush(model, rows)

    def finish_bundle(self) -> Iterator[Any]:
        for model, rows in self._buffers.items():
            if rows:
                for failed in self._flush(model, rows):
                    yield GlobalWindows.windowed_value(failed)
        self._buffers = {}
        self.release_connection()

    def _flush(self, model: str, rows: list[Converted]) -> Iterator[int]:
        """Writes one batch; yields its error count when it failed (a gate marker)."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                result: BatchResult = self._writer().write(model, rows)
                break
            except (psycopg.OperationalError, InjectedFault) as exc:
                # Transient: a lost connection or a failed attempt. The ledger makes the
                # retry write only what the failed attempt did not commit.
                if attempt == WRITE_ATTEMPTS:
                    raise
                delay = Backoff().delay(attempt)
                log.warning(
                    "batch of %d %s rows failed (%s); retrying in %.1f s",
                    len(rows),
                    model,
                    exc,
                    delay,
                )
                self.drop_connection()
                time.sleep(delay)
        log.debug(  # per batch: shown with --verbose
            "stage %d: %s: %d rows (%d inserted, %d existing, %d overwritten, %d dropped)",
            self._stage,
            model,
            result.rows,
            result.inserted,
            result.existing,
            result.overwritten,
            result.dropped,
        )
        if result.errors:
            yield result.errors


@dataclass(eq=False)
class WriteStage(beam.PTransform):
    """Writes the rows of one stage once ``gate`` (``relocate.beam.gate``) is complete.

    Returns the next gate: ``gate``'s parts and the batches this stage failed to write.
    """

    stage: int
    registry: Registry
    settings: ImportSettings
    layouts: dict[str, TableLayout | None]
    gate: tuple[beam.PCollection, ...]

    def __post_init__(self) -> None:
        super().__init__()

    def expand(self, rows: beam.PCollection) -> tuple[beam.PCollection, ...]:  # type: ignore[override]
        failures = rows | "Write" >> beam.ParDo(
            _WriteStageFn(self.stage, self.registry, self.settings, self.layouts),
            *wait_for(self.gate),
        )
        return (*self.gate, failures)


@dataclass(eq=False)
class _WriteReportsFn(_PostgresFn):
    """Writes report entries (skipped rows, findings) to ``relocate_report`` in batches."""

    _settings: ImportSettings
    _batch_size: int = 5000

    def __post_init__(self) -> None:
        super().__init__()

    def start_bundle(self) -> None:
        self._buffer: list[tuple] = []

    def process(self, entry: tuple) -> Iterator[int]:
        self._buffer.append(entry)
        if len(self._buffer) >= self._batch_size:
            yield self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        if self._buffer:
            yield GlobalWindows.windowed_value(self._flush())
        self.release_connection()

    def _flush(self) -> int:
        conn = self.connection()
        entries, self._buffer = self._buffer, []
        with conn.transaction(), conn.cursor() as cur:
            write_reports(cur, self._settings, entries)
        return len(entries)


@dataclass(eq=False)
class WriteReports(beam.PTransform):
    """Stores report entries; returns the number stored per batch (to wait for, with
    ``AsIter``)."""

    settings: ImportSettings

    def __post_init__(self) -> None:
        super().__init__()

    def expand(self, entries: beam.PCollection) -> beam.PCollection:
        return entries | "Store" >> beam.ParDo(_WriteReportsFn(self.settings))
