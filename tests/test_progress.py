"""Issue 15: progress while an import runs, ``relocate status``, and the summary line.

The progress rows (``relocate_progress``) are checked against the ledger they describe;
the display is checked on real imports (lines when stderr is not a terminal) and with rich
forced onto a terminal; ``relocate status`` on finished, failed, unknown and interrupted
imports; the line that ends an import on its values.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import psycopg
import pytest
from rich.console import Console

from relocate.cli.progress import PlainView, StageLines, TerminalView, status_line
from relocate.db.progress import Snapshot, read_snapshot

from .helpers import (
    TWO_WORKERS,
    import_export,
    project_name_taken,
    query,
    row,
    run_cli,
    scalar,
    user,
    useremail,
    write_export,
)
from .test_hostile_constraints import tenant


@pytest.fixture
def plain_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress as lines (what a log gets), a status line every 0.3 s."""
    monkeypatch.setenv("RELOCATE_PROGRESS", "plain")
    monkeypatch.setenv("RELOCATE_STATUS_INTERVAL", "0.3")


def generated(tmp_path: Path, rows: int) -> Path:
    out = tmp_path / "tenant.json"
    run = run_cli("generate", str(out), "--rows", str(rows), "--seed", "3")
    assert run.code == 0, run.err
    return out


def progress_sums(dsn: str, import_uuid: str, kind: str) -> dict[int, int]:
    return dict(
        query(
            dsn,
            "SELECT stage, sum(rows)::bigint FROM relocate_progress "
            "WHERE import_uuid = %s AND kind = %s GROUP BY stage",
            (import_uuid, kind),
        )
    )


def ledger_counts(dsn: str, import_uuid: str) -> dict[int, int]:
    return dict(
        query(
            dsn,
            "SELECT stage, count(*) FROM relocate_pk_map WHERE import_uuid = %s GROUP BY stage",
            (import_uuid,),
        )
    )


def snapshot(dsn: str, import_uuid: str) -> Snapshot:
    with psycopg.connect(dsn) as conn:
        return read_snapshot(conn, import_uuid, None)


# ---------------------------------------------------------------------------------------
# The progress rows against the ledger, and the lines of a real import


def test_progress_rows_add_up_to_the_ledger_and_the_lines_follow_the_stages(
    db_dsn: str, tmp_path: Path, plain_progress: None, caplog: pytest.LogCaptureFixture
) -> None:
    src = generated(tmp_path, 1500)
    import_uuid = uuid.uuid4().hex
    run = import_export(
        db_dsn, "organizations", src, "--import-uuid", import_uuid, "--batch-size", "100"
    )
    assert run.code == 0, run.err

    ledger = ledger_counts(db_dsn, import_uuid)
    written = progress_sums(db_dsn, import_uuid, "written")
    assert written == ledger
    # Rows validated per stage: every converted row is written or passed over (dropped,
    # a repeated pk), and the generated export has neither.
    assert progress_sums(db_dsn, import_uuid, "validated") == ledger
    snap = snapshot(db_dsn, import_uuid)
    assert snap.export_bytes == src.stat().st_size
    assert snap.bytes_read == src.stat().st_size
    assert snap.rows_read == sum(1 for _ in json.loads(src.read_text()))
    # One progress row per write batch (of 100 rows here, or a model's last), not per row.
    batches = scalar(
        db_dsn,
        "SELECT count(*) FROM relocate_progress WHERE import_uuid = %s AND kind = 'written'",
        (import_uuid,),
    )
    assert batches < sum(ledger.values()) / 10

    lines = run.err.splitlines()
    for stage, n in ledger.items():
        assert f"Stage {stage} started: {n:,} rows to write." in lines
        assert any(line.startswith(f"Stage {stage} done: {n:,} rows written in ") for line in lines)
    assert any(line.startswith(("Reading and validating (", "Writing (")) for line in lines)
    # The per-batch lines are --verbose's.
    assert not [r for r in caplog.records if r.name == "relocate.write"]
    assert lines[-1].startswith(f"Imported {sum(ledger.values()):,} rows in ")


def test_verbose_logs_a_line_per_batch(
    db_dsn: str, tmp_path: Path, plain_progress: None, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [user(1, "alice"), user(2, "bob"), user(3, "carol")]
    src = write_export(tmp_path / "u.json", rows)
    run = import_export(db_dsn, "users", src, "--verbose", "--batch-size", "2")
    assert run.code == 0, run.err
    batches = [r.getMessage() for r in caplog.records if r.name == "relocate.write"]
    assert "stage 1: sentry.user: 2 rows (2 inserted, 0 existing, 0 overwritten, 0 dropped)" in (
        batches
    )
    assert "stage 1: sentry.user: 1 rows (1 inserted, 0 existing, 0 overwritten, 0 dropped)" in (
        batches
    )


def test_silent_prints_nothing(db_dsn: str, tmp_path: Path, plain_progress: None) -> None:
    src = write_export(tmp_path / "u.json", [user(1, "alice")])
    run = import_export(db_dsn, "users", src, "--silent")
    assert run.code == 0
    assert run.err == ""


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault",
    [
        # The first attempt writes its rows, then fails before its commit; the retry
        # writes them again.
        "in-transaction:sentry.project:1",
        # The batch commits, then fails; its retry finds every row claimed.
        "after-commit:sentry.team:1",
    ],
)
def test_a_batch_retried_after_a_fault_is_counted_once(
    db_dsn: str, tmp_path: Path, plain_progress: None, fault: str
) -> None:
    src = generated(tmp_path, 1500)
    import_uuid = uuid.uuid4().hex
    marker = tmp_path / "fault"
    run = import_export(
        db_dsn,
        "organizations",
        src,
        "--import-uuid",
        import_uuid,
        "--batch-size",
        "100",
        "--inject-fault",
        f"{fault}:{marker}",
    )
    assert run.code == 0, run.err
    assert marker.exists()  # the fault fired
    assert progress_sums(db_dsn, import_uuid, "written") == ledger_counts(db_dsn, import_uuid)


# ---------------------------------------------------------------------------------------
# A failed import, its status, and its resume


def test_a_failed_import_its_status_and_its_resume(
    db_dsn: str, tmp_path: Path, plain_progress: None
) -> None:
    project_name_taken(db_dsn)
    src = write_export(tmp_path / "export.json", tenant())
    import_uuid = uuid.uuid4().hex
    run = import_export(db_dsn, "organizations", src, "--import-uuid", import_uuid)
    assert run.code == 1
    # The failed batch counts nothing; the committed stages count what they wrote.
    written = progress_sums(db_dsn, import_uuid, "written")
    assert written == ledger_counts(db_dsn, import_uuid)
    assert 3 not in written and written[1] == 3  # 2 users, 1 organization
    last = run.err.splitlines()[-1]
    assert last.startswith(f"Import {import_uuid} failed after ")
    assert "with 1 finding(s)" in last
    assert f"rerun with --import-uuid {import_uuid} to resume" in last
    assert f"`relocate rollback --import-uuid {import_uuid}`" in last

    status = run_cli("status", "--import-uuid", import_uuid, "--dsn", db_dsn)
    assert status.code == 0, status.err
    lines = status.out.splitlines()
    assert lines[0] == f"Import {import_uuid} (organizations)"
    assert "state: failed" in lines
    assert "stage: stage 2 of 4" in lines or "stage: stage 2 of 3" in lines, lines
    assert "stage 1: 3 of 3 rows written" in lines
    assert "findings: 1; skipped: 0; dropped: 0" in lines
    assert not any(line.startswith("finished: -") for line in lines)

    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX project_name_everywhere")
    resumed = import_export(db_dsn, "organizations", src, "--import-uuid", import_uuid)
    assert resumed.code == 0, resumed.err
    ledger = ledger_counts(db_dsn, import_uuid)
    assert progress_sums(db_dsn, import_uuid, "written") == ledger
    snap = snapshot(db_dsn, import_uuid)
    assert snap.validated == ledger  # this run's totals: the whole export
    assert all(snap.done(stage) == n for stage, n in ledger.items())
    assert "Stage 1: all 3 rows written by an earlier run." in resumed.err.splitlines()

    done = json.loads(
        run_cli("status", "--import-uuid", import_uuid, "--dsn", db_dsn, "--json").out
    )
    assert done["state"] == "done" and done["stage"] == "finished"
    assert done["findings"] == 0
    assert {s["stage"]: s["written"] for s in done["stages"]} == ledger
    assert {s["stage"]: s["rows"] for s in done["stages"]} == ledger
    assert done["finished_at"] is not None


def test_rollback_removes_the_progress_rows(db_dsn: str, tmp_path: Path) -> None:
    src = write_export(tmp_path / "u.json", [user(1, "alice")])
    import_uuid = uuid.uuid4().hex
    assert import_export(db_dsn, "users", src, "--import-uuid", import_uuid, "--silent").code == 0
    assert progress_sums(db_dsn, import_uuid, "written") == {1: 1}
    assert run_cli("rollback", "--import-uuid", import_uuid, "--dsn", db_dsn).code == 0
    assert (
        query(db_dsn, "SELECT * FROM relocate_progress WHERE import_uuid = %s", (import_uuid,))
        == []
    )


# ---------------------------------------------------------------------------------------
# relocate status


def test_status_of_an_unknown_import(db_dsn: str) -> None:
    unknown = uuid.uuid4().hex
    run = run_cli("status", "--import-uuid", unknown, "--dsn", db_dsn)
    assert run.code == 1
    assert run.err.strip() == f"Error: no import {unknown} in this database"
    assert run.out == ""


def _record_running(dsn: str, import_uuid: str, detached: bool) -> None:
    """What a run leaves behind when its launcher dies mid-write: the import's row, still
    running, and the progress it had recorded."""
    run_id = uuid.uuid4().hex
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO relocate_import (import_uuid, scope, flags) VALUES (%s, 'users', %s)",
            (import_uuid, json.dumps({"detached": detached})),
        )
        conn.execute(
            "INSERT INTO relocate_progress (import_uuid, run_id, stage, kind, rows, bytes) "
            "VALUES (%s, %s, 0, 'export', 0, 5000), (%s, %s, 0, 'read', 40, 5000), "
            "(%s, %s, 1, 'validated', 30, 0), (%s, %s, 2, 'validated', 10, 0), "
            "(%s, %s, 1, 'written', 20, 0)",
            (import_uuid, run_id) * 5,
        )


def test_status_of_a_running_import_whose_launcher_is_gone(db_dsn: str) -> None:
    import_uuid = uuid.uuid4().hex
    _record_running(db_dsn, import_uuid, detached=False)
    run = run_cli("status", "--import-uuid", import_uuid, "--dsn", db_dsn)
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert (
        f"state: interrupted (its launcher is gone; resume with --import-uuid {import_uuid}, "
        f"or `relocate rollback --import-uuid {import_uuid}`)"
    ) in lines
    assert "stage: stage 1 of 2" in lines
    assert "read: 5.0 kB of 5.0 kB, 40 rows; validated: 40 rows" in lines
    assert "stage 1: 20 of 30 rows written" in lines
    assert "stage 2: 0 of 10 rows written" in lines
    assert "finished: -" in lines


def test_status_of_a_detached_import_is_running(db_dsn: str) -> None:
    import_uuid = uuid.uuid4().hex
    _record_running(db_dsn, import_uuid, detached=True)
    run = run_cli("status", "--import-uuid", import_uuid, "--dsn", db_dsn, "--json")
    assert run.code == 0, run.err
    status = json.loads(run.out)
    assert status["state"] == "running" and status["detached"] is True
    assert status["stages"] == [
        {"stage": 1, "rows": 30, "written": 20, "passed_over": 0},
        {"stage": 2, "rows": 10, "written": 0, "passed_over": 0},
    ]
    assert status["export_bytes"] == 5000 and status["rows_read"] == 40


def test_status_of_a_running_import_whose_launcher_lives(db_dsn: str) -> None:
    from relocate.db.imports import holding_liveness

    import_uuid = uuid.uuid4().hex
    _record_running(db_dsn, import_uuid, detached=False)
    with psycopg.connect(db_dsn, autocommit=True) as live, holding_liveness(live, import_uuid):
        run = run_cli("status", "--import-uuid", import_uuid, "--dsn", db_dsn)
    assert "state: running" in run.out.splitlines()


# ---------------------------------------------------------------------------------------
# The summary line


def test_the_summary_line_counts_skipped_and_dropped_rows(db_dsn: str, tmp_path: Path) -> None:
    rows = [
        user(1, "alice"),
        user(2, "bob"),
        useremail(1, 1, "alice@example.com"),
        useremail(2, 99, "ghost@example.com"),  # its user is not in the export: dropped
        row("sentry.organization", 1, name="acme", slug="acme", status=0),  # skipped
    ]
    src = write_export(tmp_path / "u.json", rows)
    report = tmp_path / "report.json"
    import_uuid = uuid.uuid4().hex
    run = import_export(
        db_dsn, "users", src, "--import-uuid", import_uuid, "--report-file", str(report)
    )
    assert run.code == 0, run.err
    written = scalar(
        db_dsn, "SELECT count(*) FROM relocate_pk_map WHERE import_uuid = %s", (import_uuid,)
    )
    last = run.err.splitlines()[-1]
    assert last.startswith(f"Imported {written:,} rows in ")
    assert f"; 1 skipped, 1 dropped; report: {report}. " in last
    assert last.endswith(f"Undo it with `relocate rollback --import-uuid {import_uuid}`.")
    # The per-model table is still there, above it.
    assert any(line.startswith("total ") for line in run.err.splitlines())

    again = import_export(db_dsn, "users", write_export(tmp_path / "v.json", [user(5, "eve")]))
    assert (
        "; 0 skipped, 0 dropped; rerun with --report-file to keep the details. "
        in (again.err.splitlines()[-1])
    )


# ---------------------------------------------------------------------------------------
# The views, fed with snapshots


def _writing(done1: int, done2: int = 0) -> Snapshot:
    return Snapshot(
        run_id="r",
        export_bytes=2_000_000,
        bytes_read=2_000_000,
        rows_read=1_500,
        validated={1: 1_000, 2: 400},
        written={1: done1, 2: done2},
        first_write={1: 1.0, **({2: 2.0} if done2 else {})},
    )


def test_the_terminal_display_shows_bars_with_totals() -> None:
    buffer = io.StringIO()
    view = TerminalView(Console(file=buffer, force_terminal=True, width=140))
    view.update(Snapshot(run_id="r", export_bytes=2_000_000, bytes_read=500_000), 0.0)
    view.update(_writing(600), 1.0)
    view.close(_writing(1_000, 400), 2.0)
    text = buffer.getvalue()
    assert "Export read" in text and "2.0 MB" in text
    assert "Rows validated" in text and "1,400/1,400 rows" in text
    assert "Stage 1" in text and "600/1,000 rows" in text and "1,000/1,000 rows" in text
    assert "Stage 2" in text and "400/400 rows" in text


def test_stage_lines_and_status_lines() -> None:
    out = io.StringIO()
    view = PlainView(out, status_every=10.0, start=0.0)
    view.update(Snapshot(run_id="r", export_bytes=2_000_000, bytes_read=1_000_000), 10.0)
    view.update(_writing(200), 11.0)
    view.update(_writing(600), 21.0)
    view.update(_writing(1_000, 100), 22.0)
    view.close(_writing(1_000, 400), 23.0)
    assert out.getvalue().splitlines() == [
        "Reading and validating (10 s): 1.0 MB of 2.0 MB (50%) read, 0 rows read, 0 validated.",
        "Stage 1 started: 1,000 rows to write.",
        "Writing (21 s): 600 of 1,400 rows (43%), 40 rows/s, about 20 s left.",
        "Stage 1 done: 1,000 rows written in 11.0 s.",
        "Stage 2 started: 400 rows to write.",
        "Stage 2 done: 400 rows written in 1.0 s.",
    ]


def test_a_stage_an_earlier_run_wrote_is_said_so() -> None:
    lines = StageLines()
    snap = _writing(1_000, 100)
    snap.first_write = {2: 1.0}
    assert lines.lines(snap, 5.0) == [
        "Stage 1: all 1,000 rows written by an earlier run.",
        "Stage 2 started: 400 rows to write.",
    ]
    assert status_line(snap, None, 5.0) == "Writing (5 s): 1,100 of 1,400 rows (79%)."


def test_a_global_wipe_forgets_the_rows_written_it_deleted(db_dsn: str, tmp_path: Path) -> None:
    """The wipe deletes another import's ledger rows: its rows written go with them (a
    resumed run writes them again), the rest of its progress and the table stay."""
    from relocate.db.wipe import wipe_database
    from relocate.schemas.registry import Registry

    src = write_export(tmp_path / "u.json", [user(1, "alice"), user(2, "bob")])
    wiped = uuid.uuid4().hex
    assert import_export(db_dsn, "users", src, "--import-uuid", wiped, "--silent").code == 0
    assert progress_sums(db_dsn, wiped, "written") == {1: 2}
    with psycopg.connect(db_dsn) as conn:
        wipe_database(conn, Registry.load(), keep_import=uuid.uuid4().hex)
    assert progress_sums(db_dsn, wiped, "written") == {}
    assert progress_sums(db_dsn, wiped, "validated") == {1: 2}


@pytest.mark.slow
def test_progress_is_recorded_from_worker_processes(
    db_dsn: str, tmp_path: Path, plain_progress: None
) -> None:
    """The read and validation steps post from the runner's worker processes (nothing they
    rely on lives in the launcher's modules)."""
    src = generated(tmp_path, 800)
    import_uuid = uuid.uuid4().hex
    run = import_export(
        db_dsn,
        "organizations",
        src,
        "--import-uuid",
        import_uuid,
        *TWO_WORKERS,
    )
    assert run.code == 0, run.err
    ledger = ledger_counts(db_dsn, import_uuid)
    assert progress_sums(db_dsn, import_uuid, "written") == ledger
    assert progress_sums(db_dsn, import_uuid, "validated") == ledger
    snap = snapshot(db_dsn, import_uuid)
    assert snap.rows_read == sum(1 for _ in json.loads(src.read_text()))
    assert snap.bytes_read == src.stat().st_size
