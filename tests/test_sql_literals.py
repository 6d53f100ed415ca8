"""Array literals the write path sends instead of Python lists (cheaper to adapt)."""

from __future__ import annotations

import psycopg
import pytest

from relocate.db.sql_literals import bigint_array, model_array


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
