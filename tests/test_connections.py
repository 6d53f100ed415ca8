"""Connection handling: retries with backoff, and the ``--max-db-connections`` cap."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from relocate.db.connection_cap import (
    CONNECT_ATTEMPTS,
    Backoff,
    ConnectionSlotTimeout,
    open_connection,
    slot_key,
    try_take_slot,
)
from relocate.db.localpg import free_port
from tests.helpers import import_export, run_cli, scalar


def _holders(conn: psycopg.Connection, import_uuid: str) -> set[int]:
    """Backend pids holding one of the import's connection slots."""
    rows = conn.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = %s AND objsubid = 2",
        (slot_key(import_uuid) & 0xFFFFFFFF,),
    ).fetchall()
    return {r[0] for r in rows}


def test_slots_are_taken_up_to_the_cap_and_freed_with_the_session(db_dsn):
    key = slot_key("a" * 32)
    conns = [psycopg.connect(db_dsn) for _ in range(3)]
    try:
        taken = [try_take_slot(c, key, 2) for c in conns]
        assert sorted(t for t in taken if t is not None) == [0, 1]
        assert taken.count(None) == 1
        waiting = conns[taken.index(None)]
        holder = conns[taken.index(0)]
        holder.close()
        # The server lets the closed session's locks go once its backend has exited,
        # a moment after the client's close returns.
        deadline = time.monotonic() + 10
        while (got := try_take_slot(waiting, key, 2)) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == 0
    finally:
        for c in conns:
            c.close()


def test_slot_keys_differ_between_imports():
    assert slot_key("a" * 32) != slot_key("b" * 32)
    assert -(1 << 31) <= slot_key(uuid.uuid4().hex) < (1 << 31)


def test_unreachable_database_is_retried_with_growing_backoff_then_raised():
    dsn = f"host=127.0.0.1 port={free_port()} dbname=x connect_timeout=2"
    slept: list[float] = []
    with pytest.raises(psycopg.OperationalError):
        open_connection(
            lambda: psycopg.connect(dsn),
            import_uuid="a" * 32,
            cap=None,
            backoff=Backoff(first=1.0, ceiling=3.0),
            sleep=slept.append,
        )
    assert len(slept) == CONNECT_ATTEMPTS - 1
    ceilings = [1.0, 2.0, 3.0, 3.0]
    assert all(0 <= d <= c for d, c in zip(slept, ceilings, strict=True))


def test_a_connection_waits_for_a_free_slot(db_dsn):
    import_uuid = uuid.uuid4().hex
    blocker = psycopg.connect(db_dsn)
    assert try_take_slot(blocker, slot_key(import_uuid), 1) == 0
    waits: list[float] = []
    with pytest.raises(ConnectionSlotTimeout, match="all 1 database connection slots"):
        open_connection(
            lambda: psycopg.connect(db_dsn),
            import_uuid=import_uuid,
            cap=1,
            wait_seconds=0.3,
            sleep=lambda d: (waits.append(d), time.sleep(0.05)),
        )
    assert waits, "it waited before giving up"
    # The waiter held no connection while it waited: only the blocker holds a slot.
    with psycopg.connect(db_dsn) as probe:
        assert _holders(probe, import_uuid) == {blocker.info.backend_pid}
    threading.Timer(0.3, blocker.close).start()
    conn = open_connection(
        lambda: psycopg.connect(db_dsn), import_uuid=import_uuid, cap=1, wait_seconds=30
    )
    try:
        with psycopg.connect(db_dsn) as probe:
            assert _holders(probe, import_uuid) == {conn.info.backend_pid}
    finally:
        conn.close()


class _SlotSampler(threading.Thread):
    """Samples, until stopped, which backends hold the import's connection slots."""

    def __init__(self, dsn: str, import_uuid: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.import_uuid = dsn, import_uuid
        self.most = 0
        self.pids: set[int] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                holders = _holders(conn, self.import_uuid)
                self.most = max(self.most, len(holders))
                self.pids |= holders
                time.sleep(0.005)


def _generated_export(tmp_path: Path, rows: int) -> Path:
    out = tmp_path / "tenant.json"
    run = run_cli("generate", str(out), "--rows", str(rows), "--seed", "7")
    assert run.code == 0, run.err
    return out


@pytest.mark.slow
def test_cap_holds_across_several_multi_processing_workers(db_dsn, tmp_path):
    """Three worker processes, two slots, one of them held by the test for a while: the
    import waits for it, never holds more than the cap, and completes."""
    src = _generated_export(tmp_path, 6000)
    import_uuid = uuid.uuid4().hex
    blocker = psycopg.connect(db_dsn)
    assert try_take_slot(blocker, slot_key(import_uuid), 2) is not None
    sampler = _SlotSampler(db_dsn, import_uuid)
    sampler.start()
    release = threading.Timer(4.0, blocker.close)
    release.start()
    try:
        run = import_export(
            db_dsn,
            "organizations",
            src,
            "--import-uuid",
            import_uuid,
            "--max-db-connections",
            "2",
            "--batch-size",
            "200",
            "--runner=DirectRunner",
            "--direct_running_mode=multi_processing",
            "--direct_num_workers=3",
        )
    finally:
        release.cancel()
        blocker.close()
        sampler.stop.set()
        sampler.join()
    assert run.code == 0, run.err
    assert sampler.most <= 2
    assert len(sampler.pids) >= 3, "slots were taken by more than the test's own session"
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_project") > 0
    written = scalar(
        db_dsn, "SELECT count(*) FROM relocate_pk_map WHERE import_uuid = %s", (import_uuid,)
    )
    assert written > 5000


def test_max_db_connections_must_be_positive(db_dsn, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(
            "import",
            "users",
            str(tmp_path / "none.json"),
            "--dsn",
            db_dsn,
            "--max-db-connections",
            "0",
        )
    assert exit_.value.code == 2
    assert "--max-db-connections: wants a whole number of at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_release_snapshot_imports_alike_on_two_multi_processing_workers(
    db_dsn, another_db_dsn, fixtures_dir
):
    """The whole of test_at_24_7_0.json in Global scope: two worker processes under a
    connection cap give, row for row, what the in-process runner gives."""
    from tests.canonical import canonical_dump, integrity

    src = fixtures_dir / "release-snapshots" / "test_at_24_7_0.json"
    in_process = import_export(db_dsn, "global", src)
    assert in_process.code == 0, in_process.err
    workers = import_export(
        another_db_dsn,
        "global",
        src,
        "--max-db-connections",
        "2",
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    )
    assert workers.code == 0, workers.err
    assert integrity(another_db_dsn) == {}
    assert scalar(another_db_dsn, "SELECT count(*) FROM relocate_pk_map") == 169
    assert canonical_dump(another_db_dsn) == canonical_dump(db_dsn)
