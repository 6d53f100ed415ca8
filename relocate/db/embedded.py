"""The embedded default target: a PostgreSQL cluster of relocate's own on this machine.

Used when a command gets no ``--dsn``: a scratch target to validate an export before
touching production. The cluster lives in a data directory relocate owns
(``$RELOCATE_DATA_DIR``, else ``/var/lib/relocate/postgres`` as root, else
``~/.local/share/relocate/postgres``) and holds a database ``sentry`` with the schema.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import psycopg

from relocate.db.localpg import LocalCluster

DATABASE = "sentry"


def data_dir() -> Path:
    if os.environ.get("RELOCATE_DATA_DIR"):
        return Path(os.environ["RELOCATE_DATA_DIR"])
    if os.geteuid() == 0:
        # Root's home is 0700: the server runs as `postgres` and could not reach it.
        return Path("/var/lib/relocate/postgres")
    return Path.home() / ".local" / "share" / "relocate" / "postgres"


def ensure_database(cluster: LocalCluster) -> str:
    """Creates the ``sentry`` database with the schema (once); returns its DSN."""
    from relocate.db.ddl import create_schema

    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {DATABASE}")
    dsn = cluster.dsn(DATABASE)
    with psycopg.connect(dsn) as conn:
        create_schema(conn)
    return dsn


@contextmanager
def embedded_target(out: TextIO = sys.stderr, keep_running: bool = False) -> Iterator[str]:
    """Starts (or reuses) the embedded cluster; yields the DSN of its ``sentry`` database.

    A cluster this call started is stopped at the end unless ``keep_running``; one that
    was already running is left running.
    """
    cluster = LocalCluster(data_dir(), durable=True)
    cluster.init()
    was_running = cluster.running()
    cluster.start()
    try:
        dsn = ensure_database(cluster)
        print(
            f"Embedded PostgreSQL: data in {cluster.data_dir}, "
            f"listening on 127.0.0.1:{cluster.port}",
            file=out,
        )
        print(
            f"  connect with: psql '{dsn}'"
            + ("" if keep_running or was_running else "  (after `relocate local-db start`)"),
            file=out,
        )
        yield dsn
    finally:
        if not keep_running and not was_running:
            cluster.stop()


def stop_embedded() -> bool:
    cluster = LocalCluster(data_dir(), durable=True)
    if not cluster.initialized():
        return False
    cluster.stop()
    return True
