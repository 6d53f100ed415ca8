"""An import's state as the target records it: what ``relocate status`` shows.

Read from ``relocate_import`` (scope, status, times, flags), ``relocate_progress`` (rows
per stage, ``relocate.db.progress``) and ``relocate_report`` (findings, skipped and
dropped rows of the latest run). A ``running`` import whose launcher no longer holds its
liveness lock (``relocate.db.imports``) was interrupted; a detached one has no launcher, so
``running`` is taken at its word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from relocate.db.imports import live_key
from relocate.db.progress import Snapshot, read_snapshot


@dataclass
class ImportStatus:
    """One import's state.

    Attributes:
        import_uuid: the import.
        scope: its scope.
        status: ``relocate_import.status`` (running, done, failed, rolled back, wiped).
        state: what it is now: ``status``, or ``interrupted`` for a ``running`` import
            whose launcher is gone.
        detached: submitted with ``--detach``.
        started_at: when it was started (or last resumed).
        finished_at: when it ended (None: it has not).
        progress: the sums of its progress rows (latest run).
        findings: findings of the latest run.
        skipped: rows the latest run skipped.
        dropped: rows the latest run dropped.
    """

    import_uuid: str
    scope: str
    status: str
    state: str
    detached: bool
    started_at: datetime
    finished_at: datetime | None
    progress: Snapshot = field(default_factory=Snapshot)
    findings: int = 0
    skipped: int = 0
    dropped: int = 0

    @property
    def stage(self) -> str:
        """Where the import is (or stopped)."""
        snap = self.progress
        if self.state == "done":
            return "finished"
        if not snap.writing():
            return "reading and validating" if snap.rows_read else "not started"
        return f"stage {max(snap.first_write)} of {max(snap.validated, default=0)}"

    def as_json(self) -> dict[str, Any]:
        snap = self.progress
        return {
            "import_uuid": self.import_uuid,
            "scope": self.scope,
            "status": self.status,
            "state": self.state,
            "detached": self.detached,
            "stage": self.stage,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "run_id": snap.run_id,
            "export_bytes": snap.export_bytes,
            "bytes_read": snap.bytes_read,
            "rows_read": snap.rows_read,
            "stages": [
                {
                    "stage": stage,
                    "rows": snap.validated.get(stage, 0),
                    "written": snap.written.get(stage, 0),
                    "passed_over": snap.passed.get(stage, 0),
                }
                for stage in sorted(set(snap.validated) | set(snap.written))
            ],
            "findings": self.findings,
            "skipped": self.skipped,
            "dropped": self.dropped,
        }


def _exists(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None


def _launcher_gone(conn: psycopg.Connection, import_uuid: str) -> bool:
    """Whether nobody holds the import's liveness lock (its launcher is gone)."""
    with conn.transaction():
        taken = conn.execute(
            "SELECT pg_try_advisory_xact_lock(%s)", (live_key(import_uuid),)
        ).fetchone()
    return bool(taken and taken[0])  # held for that transaction only


def read_status(conn: psycopg.Connection, import_uuid: str) -> ImportStatus | None:
    """The state of ``import_uuid`` (32 hex digits); None when the target has no such
    import. ``conn`` must not be in a transaction."""
    if not _exists(conn, "relocate_import"):
        return None
    row = conn.execute(
        "SELECT scope, status, started_at, finished_at, flags FROM relocate_import "
        "WHERE import_uuid = %s",
        (import_uuid,),
    ).fetchone()
    conn.commit()
    if row is None:
        return None
    scope, status, started_at, finished_at, flags = row
    detached = bool((flags or {}).get("detached"))
    state = status
    if status == "running" and not detached and _launcher_gone(conn, import_uuid):
        state = "interrupted"
    snap = (
        read_snapshot(conn, import_uuid, None) if _exists(conn, "relocate_progress") else Snapshot()
    )
    run_id = snap.run_id
    if run_id is None:
        latest = conn.execute(
            "SELECT run_id FROM relocate_report WHERE import_uuid = %s "
            "ORDER BY created_at DESC LIMIT 1",
            (import_uuid,),
        ).fetchone()
        run_id = latest[0].hex if latest else None
    counts: dict[str, int] = {}
    if run_id is not None:
        counts = dict(
            conn.execute(
                "SELECT action, count(*) FROM relocate_report WHERE run_id = %s "
                "AND import_uuid = %s GROUP BY action",
                (run_id, import_uuid),
            ).fetchall()
        )
    conn.commit()
    return ImportStatus(
        import_uuid=import_uuid,
        scope=scope,
        status=status,
        state=state,
        detached=detached,
        started_at=started_at,
        finished_at=finished_at,
        progress=snap,
        findings=counts.get("error", 0),
        skipped=counts.get("skipped", 0),
        dropped=counts.get("dropped", 0),
    )
