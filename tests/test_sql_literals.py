"""Array literals the write path sends instead of Python lists (cheaper to adapt)."""

from __future__ import annotations

from datetime import datetime, timezone

import psycopg
import pytest

from relocate.db.sql_literals import array_literal, bigint_array, model_array


def test_bigint_array_round_trips_through_postgres(db_dsn):
    values = [1, -2, 0, 2**63 - 1, -(2**63)]
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT %s::bigint[]", (bigint_array(values),)).fetchone()[0] == values
        assert conn.execute("SELECT %s::bigint[]", (bigint_array([]),)).fetchone()[0] == []


def test_model_array_round_trips_and_refuses_anything_but_model_names(db_dsn):
    names = ["sentry.user", "workflow_engine.workflowgroupstatus"]
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT %s::text[]", (model_array(names),)).fetchone()[0] == names
    for bad in ("sentry.user}", "a,b.c", 'sentry."x"', "Sentry.User", "user"):
        with pytest.raises(ValueError, match="not a model name"):
            model_array([bad])


def test_array_literal_keeps_every_text_and_null_as_it_is(db_dsn):
    texts = [
        'a"b',
        "back\\slash",
        "\\",
        '\\"',
        "NULL",
        "null",
        "",
        " spaced ",
        "{braces}",
        "comma,x",
        "line\nbreak\ttab",
        "ünïcødé ✓",
        "'quote'",
        None,
    ]
    ints = [1, None, -(2**63), 2**63 - 1, 0]
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT %s::text[]", (array_literal(texts),)).fetchone()[0] == texts
        assert conn.execute("SELECT %s::bigint[]", (array_literal(ints),)).fetchone()[0] == ints
        assert conn.execute("SELECT %s::smallint[]", (array_literal([3, None]),)).fetchone()[0] == [
            3,
            None,
        ]
        assert conn.execute("SELECT %s::text[]", (array_literal([]),)).fetchone()[0] == []
        when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
        got = conn.execute(
            "SELECT %s::timestamptz[]", (array_literal([when, "2023-01-02T03:04:05.678Z"]),)
        ).fetchone()[0]
        assert got == [when, datetime(2023, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)]


def test_array_literal_refuses_what_it_would_have_to_guess():
    for bad in (True, 1.5, b"bytes", ["nested"]):
        with pytest.raises(TypeError, match="no array literal"):
            array_literal([bad])
