"""An import's progress, appended to ``relocate_progress`` as its steps go.

Rows are only ever inserted, one per report, so that parallel writers never wait on a
shared counter row; what an import has done is a ``sum(...) GROUP BY`` over its rows (about
one row per write batch, and a few per read or validation step every couple of seconds:
some 20,000 rows for a 10M-row export), never a count over the ledger.

Kinds (``kind``):

* ``export``: the export's size in bytes, recorded by the read step (stage 0);
* ``read``: bytes of the export consumed (a delta of the source's position, so negative
  when a second pass rewinds it: an encrypted export is read twice) and rows read;
* ``validated``: rows converted and validated, per stage: the stage's total to write;
* ``written``: rows a batch claimed and wrote, inserted in the batch's own transaction
  (a rolled-back batch counts nothing; rows an earlier run of the import wrote were
  counted by that run, and are not counted again);
* ``passed``: rows of a batch that were not written (dropped, repeated pks): with the
  written ones, they complete the stage.

``read``, ``validated`` and ``passed`` describe one run (each run reads the whole
export again); ``written`` rows add up over every run of the import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from relocate.logic.settings import ImportSettings

log = logging.getLogger("relocate.progress")

#: Seconds between two reports of a read or validation step (and at a bundle's end).
POST_EVERY = 2.0


def record_batch(
    cur: psycopg.Cursor,
    settings: ImportSettings,
    stage: int,
    model: str,
    written: int,
    passed: int,
) -> None:
    """Records what one write batch did, in the batch's open transaction."""
    rows = [(k, n) for k, n in (("written", written), ("passed", passed)) if n]
    if not rows:
        return
    cur.executemany(
        "INSERT INTO relocate_progress (import_uuid, run_id, stage, model, kind, rows) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        [(settings.import_uuid, settings.run_id, stage, model, k, n) for k, n in rows],
    )


def post(settings: ImportSettings, kind: str, counts: dict[int, tuple[int, int]]) -> bool:
    """Appends ``stage -> (rows, bytes)`` of ``kind`` through a short autocommit
    connection; best effort (progress never fails an import). Returns whether it did."""
    from relocate.db.target import connect

    rows = [(s, r, b) for s, (r, b) in sorted(counts.items()) if r or b]
    if not rows:
        return True
    try:
        with (
            connect(
                settings, autocommit=True, connect_timeout=5, application_name="relocate-progress"
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.executemany(
                "INSERT INTO relocate_progress (import_uuid, run_id, stage, kind, rows, bytes) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [(settings.import_uuid, settings.run_id, s, kind, r, b) for s, r, b in rows],
            )
    except psycopg.Error as exc:
        log.debug("progress not recorded: %s", exc)
        return False
    return True


class Poster:
    """Counts of one DoFn instance, posted at most every ``every`` seconds.

    Created in the DoFn's ``setup`` (never shared between DoFns or processes).
    """

    def __init__(
        self,
        settings: ImportSettings,
        kind: str,
        every: float = POST_EVERY,
        send: Callable[[ImportSettings, str, dict[int, tuple[int, int]]], bool] = post,
    ) -> None:
        self.settings = settings
        self._kind = kind
        self._every = every
        self._send = send
        self._pending: dict[int, tuple[int, int]] = {}
        self._last = time.monotonic()

    def add(self, stage: int, rows: int = 0, nbytes: int = 0) -> None:
        r, b = self._pending.get(stage, (0, 0))
        self._pending[stage] = (r + rows, b + nbytes)
        if time.monotonic() - self._last >= self._every:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        if self._pending and self._send(self.settings, self._kind, self._pending):
            self._pending = {}


@dataclass
class Snapshot:
    """An import's progress, as ``read_snapshot`` summed it.

    Attributes:
        export_bytes: the export's size (None: not known).
        bytes_read: bytes of the export consumed by this run.
        rows_read: rows read by this run.
        validated: stage -> rows validated by this run (the stage's total to write).
        written: stage -> rows written, by every run of the import.
        passed: stage -> rows this run's writes passed over (dropped, repeated pks).
        first_write: stage -> when its first batch of this run was recorded.
        run_id: the run summed (None: no progress recorded).
    """

    run_id: str | None = None
    export_bytes: int | None = None
    bytes_read: int = 0
    rows_read: int = 0
    validated: dict[int, int] = field(default_factory=dict)
    written: dict[int, int] = field(default_factory=dict)
    passed: dict[int, int] = field(default_factory=dict)
    first_write: dict[int, Any] = field(default_factory=dict)

    @property
    def total_validated(self) -> int:
        return sum(self.validated.values())

    @property
    def total_written(self) -> int:
        return sum(self.written.values())

    def done(self, stage: int) -> int:
        """Rows of ``stage`` the writes are through with (written or passed over)."""
        return self.written.get(stage, 0) + self.passed.get(stage, 0)

    def writing(self) -> bool:
        """Whether this run's writes have begun (the validation totals are then final)."""
        return bool(self.first_write)


def read_snapshot(conn: psycopg.Connection, import_uuid: str, run_id: str | None) -> Snapshot:
    """Sums the progress of ``import_uuid``: of run ``run_id``, or of its latest run
    (None). One query over the import's progress rows (its index)."""
    rows = conn.execute(
        """
        WITH mine AS (
            SELECT run_id, stage, kind, rows, bytes, at FROM relocate_progress
            WHERE import_uuid = %s
        ), run AS (
            SELECT COALESCE(%s::uuid, (SELECT run_id FROM mine ORDER BY at DESC LIMIT 1)) AS id
        )
        SELECT kind, stage, mine.run_id = run.id, sum(rows)::bigint, sum(bytes)::bigint,
               min(at), run.id
        FROM mine, run
        WHERE mine.run_id = run.id OR mine.kind = 'written'
        GROUP BY kind, stage, mine.run_id = run.id, run.id
        """,
        (import_uuid, run_id),
    ).fetchall()
    snap = Snapshot(run_id=run_id)
    for kind, stage, this_run, n, nbytes, first, run in rows:
        snap.run_id = run.hex if run is not None else None
        if kind == "export":
            snap.export_bytes = nbytes
        elif kind == "read":
            snap.bytes_read += nbytes
            snap.rows_read += n
        elif kind == "validated":
            snap.validated[stage] = n
        elif kind == "written":
            snap.written[stage] = snap.written.get(stage, 0) + n
        elif kind == "passed":
            snap.passed[stage] = n
        if this_run and kind in ("written", "passed"):
            known = snap.first_write.get(stage)
            snap.first_write[stage] = first if known is None else min(known, first)
    return snap
