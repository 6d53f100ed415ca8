"""Session advisory locks held for the length of a block."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


def advisory_key(label: bytes, of: str) -> int:
    """A signed 64-bit advisory-lock key for the UUID ``of`` in the namespace ``label``."""
    digest = hashlib.sha256(label + uuid.UUID(of).bytes).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


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
