"""Converted batches staged and held on a thread beside the conversion (relocate.db.stager)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from relocate.db.constraints import ModelConstraints, StagedColumn, drop_staging
from relocate.db.held import create_held, drop_held, take
from relocate.db.stager import FINDING, HELD, STAGED, BackgroundStager
from relocate.logic.convert import Converted, pack_converted


def _plan(run_id: str) -> ModelConstraints:
    return ModelConstraints(
        model="sentry.team",
        table="sentry_team",
        stage_table=f"relocate_check_{run_id.replace('-', '')}_t",
        columns=(StagedColumn("status", "integer", None, "integer"),),
        checks=(),
        uniques=(),
        foreign_keys=frozenset(),
    )


def _batch(model: str, first: int, values: list[object]) -> tuple:
    rows = [
        Converted(model, first + n, 100 + first + n, {"status": value})
        for n, value in enumerate(values)
    ]
    return pack_converted(model, rows)


def test_every_batch_is_held_and_staged_and_a_rejected_value_is_a_finding(db_dsn: str) -> None:
    run_id = str(uuid.uuid4())
    plan = _plan(run_id)
    batches = [
        _batch("sentry.team", 1, [1, 2, 3]),
        _batch("sentry.team", 4, [4, "not a number", 6]),
        _batch("sentry.project", 1, ["anything"]),  # no plan: only held
    ]
    with psycopg.connect(db_dsn) as conn:
        create_held(conn, run_id, uuid.uuid4().hex)
        stager = BackgroundStager(lambda: conn, run_id, {plan.model: plan}, depth=1)
        results = []
        for batch in batches:
            results += stager.put(batch)
        results += stager.finish()
        try:
            held = [value for kind, value in results if kind == HELD]
            assert sorted(take(conn, run_id, ref) for ref in held) == sorted(batches)
            assert sum(value for kind, value in results if kind == STAGED) == 5
            (finding,) = [value for kind, value in results if kind == FINDING]
            assert (finding.model, finding.ordinal, finding.left_pk) == ("sentry.team", 5, 105)
            assert "cannot hold the row" in finding.reason
            staged = conn.execute(
                f'SELECT "status" FROM "{plan.stage_table}" ORDER BY 1'  # noqa: S608 - test names
            ).fetchall()
            assert staged == [(1,), (2,), (3,), (4,), (6,)]
            # Reused for a second bundle: a new thread, the staging table known to exist.
            again = stager.put(_batch("sentry.team", 7, [7])) + stager.finish()
            assert sorted(kind for kind, _ in again) == [HELD, STAGED]
        finally:
            drop_staging(conn, [plan])
            drop_held(conn, run_id)


def test_a_failure_on_the_thread_reaches_the_caller_and_ends_the_thread(db_dsn: str) -> None:
    run_id = str(uuid.uuid4())  # no held table: holding fails
    with psycopg.connect(db_dsn) as conn:
        stager = BackgroundStager(lambda: conn, run_id, {}, depth=1)
        with pytest.raises(psycopg.errors.UndefinedTable):
            for n in range(1, 50):  # the failure shows on a later put, or at the end
                stager.put(_batch("sentry.project", n, [n]))
            stager.finish()
        assert stager._thread is None  # noqa: SLF001 - no thread left behind
        conn.rollback()
        create_held(conn, run_id, uuid.uuid4().hex)
        try:
            # The error was raised once; the stager works again.
            (result,) = stager.put(_batch("sentry.project", 1, [1])) + stager.finish()
            assert result[0] == HELD
        finally:
            drop_held(conn, run_id)
