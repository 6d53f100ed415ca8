"""Converted batches held in the target while they wait for their stage (relocate.db.held)."""

from __future__ import annotations

import os
import pickle
import uuid
from decimal import Decimal

import psycopg
import pytest

from relocate.db.held import (
    create_held,
    decode_batch,
    drop_held,
    encode_batch,
    held_table,
    hold,
    take,
)
from relocate.logic.convert import Converted, pack_converted, unpack_converted


def _batch() -> tuple:
    rows = [
        Converted("sentry.user", 1, 11, {"username": "a\u00e9\x01", "is_active": True, "n": 2**62}),
        Converted("sentry.user", 2, 12, {"username": "b", "options": {"k": [1, 2.5, None]}}),
        Converted("sentry.user", 3, 13, {"amount": Decimal("1.10"), "id": str(uuid.uuid4())}),
    ]
    return pack_converted("sentry.user", rows)


def test_a_batch_round_trips_with_its_values_and_types() -> None:
    batch = _batch()
    back = decode_batch(encode_batch(batch))
    assert back == batch
    assert unpack_converted(back) == unpack_converted(batch)
    assert type(unpack_converted(back)[2].values["amount"]) is Decimal


class _Exploit:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("true",))


def test_a_payload_that_names_other_code_is_refused() -> None:
    import zlib

    payload = zlib.compress(pickle.dumps(("sentry.user", [(("x",), [(1, 1, _Exploit())])])))
    with pytest.raises(pickle.UnpicklingError, match=r"may not contain posix\.system"):
        decode_batch(payload)


def test_held_batches_are_read_back_by_reference_and_dropped(db_dsn: str) -> None:
    run_id = str(uuid.uuid4())
    batch = _batch()
    with psycopg.connect(db_dsn) as conn:
        create_held(conn, run_id, uuid.uuid4().hex)
        first = hold(conn, run_id, batch)
        second = hold(conn, run_id, ("sentry.email", []))
        assert first[0] == "sentry.user" and second[0] == "sentry.email"
        assert take(conn, run_id, first) == batch
        assert take(conn, run_id, first) == batch  # kept for a retried bundle
        with pytest.raises(LookupError, match="holds sentry.email, not sentry.user"):
            take(conn, run_id, ("sentry.user", second[1]))
        with pytest.raises(LookupError, match=f"gone from {held_table(run_id)}"):
            take(conn, run_id, ("sentry.user", second[1] + 100))
        drop_held(conn, run_id)
        drop_held(conn, run_id)  # idempotent
        exists = conn.execute("SELECT to_regclass(%s)", (held_table(run_id),)).fetchone()
        assert exists == (None,)


def _scratch_tables(conn: psycopg.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND (relname LIKE "
            "'relocate\\_held\\_%' OR relname LIKE 'relocate\\_check\\_%') ORDER BY 1"
        )
    ]


def test_the_tables_of_dead_runs_are_dropped_and_live_runs_keep_theirs(db_dsn: str) -> None:
    """A killed run leaves its held and staging tables; the next import start drops them,
    but not those of a run whose launcher still holds its lock, nor those of a running
    detached import (its launcher has exited while its job may run)."""
    from relocate.db.ledger import LEDGER_DDL
    from relocate.db.run_tables import drop_dead_run_tables, holding_run

    dead, live, detached_run = (str(uuid.uuid4()) for _ in range(3))
    detached = uuid.uuid4().hex
    with psycopg.connect(db_dsn) as conn, psycopg.connect(db_dsn, autocommit=True) as other:
        for statement in LEDGER_DDL:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO relocate_import (import_uuid, scope, flags) "
            "VALUES (%s, 'organizations', '{\"detached\": true}')",
            (detached,),
        )
        for run, owner in (
            (dead, uuid.uuid4().hex),
            (live, uuid.uuid4().hex),
            (detached_run, detached),
        ):
            create_held(conn, run, owner)
            conn.execute(f'CREATE UNLOGGED TABLE "relocate_check_{uuid.UUID(run).hex}_0" (x int)')
        orphan = f"relocate_check_{uuid.uuid4().hex}_3"  # its run's held table is gone
        conn.execute(f'CREATE UNLOGGED TABLE "{orphan}" (x int)')
        conn.execute('CREATE TABLE "relocate_held_not_a_run" (x int)')
        older = uuid.uuid4().hex  # a run of an older relocate: no comment, no run lock
        conn.execute(f'CREATE UNLOGGED TABLE "relocate_held_{older}" (x int)')
        conn.commit()
        with holding_run(other, live):
            dropped = drop_dead_run_tables(conn)
            assert dropped == sorted(
                [held_table(dead), f"relocate_check_{uuid.UUID(dead).hex}_0", orphan]
            )
            assert _scratch_tables(conn) == sorted(
                [
                    held_table(live),
                    f"relocate_check_{uuid.UUID(live).hex}_0",
                    held_table(detached_run),
                    f"relocate_check_{uuid.UUID(detached_run).hex}_0",
                    "relocate_held_not_a_run",
                    f"relocate_held_{older}",
                ]
            )
        conn.execute(
            "UPDATE relocate_import SET status = 'failed' WHERE import_uuid = %s", (detached,)
        )
        conn.commit()
        drop_dead_run_tables(conn)
        assert _scratch_tables(conn) == sorted(
            ["relocate_held_not_a_run", f"relocate_held_{older}"]
        )
