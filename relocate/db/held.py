"""Converted batches that wait for their stage, held in the target rather than by the runner.

The stage writes start only once the whole export is read and validated (a finding means
nothing was written), so every converted batch waits for its stage. Beam's local runner
keeps every element that crosses into a later step in memory until that step runs: the
converted rows of the whole export, about 330 bytes a row (3.3 GB at 10M rows). Each
batch goes instead into an UNLOGGED table of the run, and Beam carries ``(model, id)``.

The payload is a pickle read back only through ``_BatchUnpickler``, which builds nothing
but the value types conversion produces: a row in this table cannot run code in the
worker that reads it.
"""

from __future__ import annotations

import io
import pickle
import zlib
from typing import Any

import psycopg
from psycopg import sql

from relocate.db.run_tables import held_table, owner_comment
from relocate.logic.convert import PackedBatch

#: A held batch as it crosses Beam: (model, id in the run's held table).
HeldRef = tuple[str, int]

#: The only classes a held batch may name besides the builtins pickle needs no lookup for.
#: Conversion yields builtins today (the reader parses floats as float; timestamps, dates
#: and UUIDs stay text); these plain value types are a margin, and nothing else may load.
_ALLOWED = {
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "time"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("decimal", "Decimal"),
    ("uuid", "UUID"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a held batch may not contain {module}.{name}")


def encode_batch(batch: PackedBatch) -> bytes:
    """A packed batch as the held table stores it."""
    return zlib.compress(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL), 1)


def decode_batch(payload: bytes) -> PackedBatch:
    """The packed batch ``encode_batch`` stored (only plain value types are rebuilt)."""
    return _BatchUnpickler(io.BytesIO(zlib.decompress(payload))).load()


def create_held(conn: psycopg.Connection, run_id: str, import_uuid: str) -> None:
    """Creates the run's held table (UNLOGGED: scratch that a crash may lose with the run),
    its comment naming the import (``relocate.db.run_tables``)."""
    table = sql.Identifier(held_table(run_id))
    conn.execute(
        sql.SQL(
            "CREATE UNLOGGED TABLE IF NOT EXISTS {} "
            "(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload bytea NOT NULL)"
        ).format(table)
    )
    conn.execute(
        sql.SQL("COMMENT ON TABLE {} IS {}").format(table, sql.Literal(owner_comment(import_uuid)))
    )
    conn.commit()


def hold(conn: psycopg.Connection, run_id: str, batch: PackedBatch) -> HeldRef:
    """Stores a converted batch (own transaction); returns what Beam carries instead."""
    with conn.transaction():
        row = conn.execute(
            sql.SQL("INSERT INTO {} (payload) VALUES (%s) RETURNING id").format(
                sql.Identifier(held_table(run_id))
            ),
            (encode_batch(batch),),
        ).fetchone()
    assert row is not None
    return (batch[0], row[0])


def take(conn: psycopg.Connection, run_id: str, ref: HeldRef) -> PackedBatch:
    """The batch ``ref`` names, read in a transaction of its own (and kept: a retried
    bundle reads it again).

    Raises:
        LookupError: the run's table has no such batch.
    """
    with conn.transaction():
        row = conn.execute(
            sql.SQL("SELECT payload FROM {} WHERE id = %s").format(
                sql.Identifier(held_table(run_id))
            ),
            (ref[1],),
        ).fetchone()
    if row is None:
        raise LookupError(f"held batch {ref[1]} of {ref[0]} is gone from {held_table(run_id)}")
    batch = decode_batch(row[0])
    if batch[0] != ref[0]:
        raise LookupError(f"held batch {ref[1]} holds {batch[0]}, not {ref[0]}")
    return batch


def drop_held(conn: psycopg.Connection, run_id: str) -> None:
    """Drops the run's held table (idempotent)."""
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(held_table(run_id))))
    conn.commit()
