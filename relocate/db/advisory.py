"""Session advisory locks held for the length of a block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def holding_advisory_lock(
    conn: psycopg.Connection, key: int, *, shared: bool = False
) -> Iterator[None]:
    """Holds the session advisory lock ``key`` on ``conn`` (autocommit) until the block
    ends; waits for it first. A broken connection has lost the lock with its session."""
    kind = "_shared" if shared else ""
    conn.execute(f"SELECT pg_advisory_lock{kind}(%s)", (key,))  # noqa: S608 - two literals
    try:
        yield
    finally:
        if not conn.closed and not conn.broken:
            conn.execute(f"SELECT pg_advisory_unlock{kind}(%s)", (key,))  # noqa: S608
