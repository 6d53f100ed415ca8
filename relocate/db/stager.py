"""Staging and holding converted batches on a thread of their own, beside the conversion.

Before the first write, a worker reads, admits and converts its share of the export, and
hands each converted batch to the target twice: its constrained columns to the run's
staging tables (``relocate.db.constraints.stage_rows``) and the whole batch to the held
table (``relocate.db.held.hold``). Done in line, the worker waited for every one of those
round trips (a fifth of its time before the first write at 1M rows) while the server had
little else to do. ``BackgroundStager`` sends them from a thread with the connection to
itself, so the next batch is parsed and converted while the server takes the last one
(psycopg releases the GIL while it waits).

At most ``depth`` batches wait for the thread: the reader slows down to the server's pace
rather than piling batches up in memory.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import psycopg

from relocate.db.constraints import ModelConstraints, stage_rows
from relocate.db.held import hold
from relocate.logic.convert import PackedBatch

#: What the stager hands back: ("held", (model, id)), ("staged", rows), ("finding", Finding).
StageResult = tuple[str, Any]
HELD, STAGED, FINDING = "held", "staged", "finding"

_DONE = object()


class BackgroundStager:
    """Stages and holds the batches ``put`` to it, on a thread with its own connection.

    Args:
        connection: returns the open connection to use (called on the thread; the caller
            must not use that connection until ``finish`` returns).
        run_id: the run whose held table takes the batches.
        plans: model -> its constrained columns (models without a plan are only held).
        depth: how many batches may wait for the thread.
    """

    def __init__(
        self,
        connection: Callable[[], psycopg.Connection],
        run_id: str,
        plans: dict[str, ModelConstraints],
        depth: int = 2,
    ) -> None:
        self._connection = connection
        self._run_id = run_id
        self._plans = plans
        self._created: set[str] = set()  # staging tables known to exist
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._results: deque[StageResult] = deque()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def put(self, batch: PackedBatch) -> list[StageResult]:
        """Hands a batch to the thread (waiting while ``depth`` batches wait); returns the
        results ready so far.

        Raises:
            The thread's error, once it has failed (nothing more is staged).
        """
        if self._error is not None:
            self.close()
            self._raise_error()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="relocate-stager", daemon=True)
            self._thread.start()
        self._queue.put(batch)
        return self._ready()

    def finish(self) -> list[StageResult]:
        """Waits until every batch handed over is staged and held; returns the results
        not yet returned. The stager can be used again afterwards.

        Raises:
            The thread's error, if it failed.
        """
        self.close()
        self._raise_error()
        return self._ready()

    def close(self) -> None:
        """Ends the thread once the batches handed over are done (an error it met stays
        for ``finish`` to raise). For a caller that gives up: its bundle failed."""
        if self._thread is not None:
            self._queue.put(_DONE)
            self._thread.join()
            self._thread = None

    def _ready(self) -> list[StageResult]:
        ready = []
        while self._results:
            ready.append(self._results.popleft())
        return ready

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is _DONE:
                return
            if self._error is not None:
                continue  # failed: the batches still handed over are dropped, not staged
            try:
                self._stage(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                self._error = exc

    def _stage(self, batch: PackedBatch) -> None:
        conn = self._connection()
        plan = self._plans.get(batch[0])
        if plan is not None:
            staged, findings = stage_rows(conn, plan, batch, self._created)
            self._results.extend((FINDING, finding) for finding in findings)
            self._results.append((STAGED, staged))
        self._results.append((HELD, hold(conn, self._run_id, batch)))
