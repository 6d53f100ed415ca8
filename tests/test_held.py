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
        create_held(conn, run_id)
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
