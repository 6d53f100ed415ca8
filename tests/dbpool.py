"""Fresh test databases made ahead of need.

Cloning the schema template costs the server about 0.3 s once earlier tests have left it
work to do. A test's import is mostly Python (Beam's fixed cost), so a thread that clones
the next databases while the current test runs, and drops finished ones, takes that time
off the test's path.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading

import psycopg


class DatabasePool:
    """Clones of ``template`` on the server at ``server_dsn``, ``ahead`` of them ready.

    Args:
        server_dsn: a DSN of the server (any database).
        template: the database to clone; nobody may be connected to it.
        prefix: the names' prefix (the process id and a counter follow).
        ahead: how many clones to keep ready.
    """

    def __init__(self, server_dsn: str, template: str, prefix: str, ahead: int = 2) -> None:
        self._server = server_dsn
        self._template = template
        self._names = (f"{prefix}_{os.getpid()}_{n}" for n in itertools.count())
        self._ready: queue.Queue[str] = queue.Queue(maxsize=ahead)
        self._finished: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="test-db-pool", daemon=True)
        self._thread.start()

    def take(self) -> str:
        """A fresh clone's DSN (waits for one if none is ready)."""
        while True:
            if self._error is not None:
                raise RuntimeError("the test database pool failed") from self._error
            try:
                name = self._ready.get(timeout=0.5)
            except queue.Empty:
                continue
            return psycopg.conninfo.make_conninfo(self._server, dbname=name)

    def give_back(self, dsn: str) -> None:
        """Drops the database (in the background)."""
        self._finished.put(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])

    def close(self) -> None:
        """Stops the thread and drops every database it made."""
        self._stop.set()
        self._thread.join(timeout=60)
        with psycopg.connect(self._server, autocommit=True) as conn:
            for pending in (self._ready, self._finished):
                while not pending.empty():
                    conn.execute(f"DROP DATABASE IF EXISTS {pending.get()} WITH (FORCE)")

    def _work(self) -> None:
        try:
            with psycopg.connect(self._server, autocommit=True) as conn:
                while not self._stop.is_set():
                    self._drop_finished(conn)
                    name = next(self._names)
                    conn.execute(f"CREATE DATABASE {name} TEMPLATE {self._template}")
                    while not self._stop.is_set():
                        try:
                            self._ready.put(name, timeout=0.1)
                            break
                        except queue.Full:
                            self._drop_finished(conn)
                    else:
                        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except BaseException as exc:  # noqa: BLE001 - handed to the test that waits
            self._error = exc

    def _drop_finished(self, conn: psycopg.Connection) -> None:
        while True:
            try:
                name = self._finished.get_nowait()
            except queue.Empty:
                return
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
