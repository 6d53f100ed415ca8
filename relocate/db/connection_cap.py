"""A cap on the pipeline's database connections, held across every worker and process.

Dataflow may run hundreds of DoFn instances at once; each would open its own connection.
``--max-db-connections N`` gives the import N *slots*: PostgreSQL session advisory locks
``(key, 0..N-1)`` where ``key`` is derived from the import UUID. A DoFn keeps its
connection only while it holds a slot; without one it closes the connection, backs off
and tries again. The database itself is the arbiter, so the cap holds whatever the
number of workers, and a worker that dies releases its slot with its session.

A waiting DoFn holds no connection between attempts; each attempt is one short-lived
connection, so the server sees at most N slot holders plus the brief probes.
"""

from __future__ import annotations

import logging
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

log = logging.getLogger("relocate.connections")


class ConnectionSlotTimeout(RuntimeError):
    """No connection slot came free in time."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter.

    Attributes:
        first: the first delay's ceiling, in seconds.
        ceiling: the largest delay, in seconds.
    """

    first: float = 0.2
    ceiling: float = 5.0

    def delay(self, attempt: int) -> float:
        """The delay before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        return random.uniform(0, min(self.ceiling, self.first * 2 ** (attempt - 1)))


#: Attempts to open a connection before a connection error is raised.
CONNECT_ATTEMPTS = 5


def slot_key(import_uuid: str) -> int:
    """The advisory-lock key (a signed 32-bit integer) of an import's connection slots."""
    return zlib.crc32(f"relocate-slots:{import_uuid}".encode()) - (1 << 31)


def try_take_slot(conn: psycopg.Connection, key: int, cap: int) -> int | None:
    """Takes one free slot of ``cap`` on ``conn``'s session; returns it, or None if all
    are taken.

    One statement per slot: PostgreSQL does not promise that ``LIMIT`` stops a query
    from evaluating (and so taking) more locks than it returns.
    """
    start = random.randrange(cap)  # spreads the waiters over the slots
    try:
        for i in range(cap):
            slot = (start + i) % cap
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (key, slot)).fetchone()
            if row and row[0]:
                return slot
        return None
    finally:
        conn.commit()  # session locks outlive the transaction; end it, keep no snapshot


def open_connection(
    connect: Callable[[], psycopg.Connection],
    *,
    import_uuid: str,
    cap: int | None,
    wait_seconds: float = 3600.0,
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], None] = time.sleep,
) -> psycopg.Connection:
    """Opens a connection with ``connect``, retrying transient connection errors, and,
    when ``cap`` is set, only once it holds one of the import's ``cap`` slots.

    Args:
        connect: opens one connection (raises ``psycopg.OperationalError`` when it can't).
        import_uuid: the import whose slots are counted.
        cap: the most connections the import's DoFns may hold at once (None: no cap).
        wait_seconds: how long to wait for a free slot before giving up.
        backoff: the delays between attempts.
        sleep: waits (a parameter so that callers can be tested without sleeping).

    Raises:
        psycopg.OperationalError: the database stayed unreachable for CONNECT_ATTEMPTS.
        ConnectionSlotTimeout: no slot came free within ``wait_seconds``.
    """
    deadline = time.monotonic() + wait_seconds
    failures = 0
    waits = 0
    while True:
        try:
            conn = connect()
        except psycopg.OperationalError as exc:
            failures += 1
            if failures >= CONNECT_ATTEMPTS:
                raise
            delay = backoff.delay(failures)
            log.warning("connecting to the database failed (%s); retrying in %.1f s", exc, delay)
            sleep(delay)
            continue
        if not cap:
            return conn
        try:
            slot = try_take_slot(conn, slot_key(import_uuid), cap)
        except BaseException:
            conn.close()
            raise
        if slot is not None:
            return conn
        conn.close()
        waits += 1
        if time.monotonic() >= deadline:
            raise ConnectionSlotTimeout(
                f"all {cap} database connection slots (--max-db-connections) stayed taken "
                f"for {wait_seconds:.0f} s"
            )
        sleep(backoff.delay(waits))
