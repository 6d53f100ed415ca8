"""Hostile operations (issue 16, points 6 to 10): what an operator can do wrong around
an import, and what relocate must do then.

6. an output path that cannot be written is refused before anything is written;
7. a Global import refuses while another import runs, and an import whose rows a wipe
   deleted fails;
8. a rollback is refused while a later import's overwrite of the same rows stands;
9. an import UUID is bound to its scope, its export and its flags;
10. a target without Sentry's schema is named as such, before the export is read.

The concurrent cases hold a running import still without touching its code: it runs with
``--max-db-connections 1`` while the test holds that one connection slot (the
PostgreSQL advisory lock of ``relocate.db.connection_cap``), so its writers wait, holding
no connection and no lock, for as long as the test likes.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from relocate.db.connection_cap import slot_key
from relocate.db.ledger import LEDGER_DDL
from relocate.schemas.registry import Registry

from .helpers import count, import_export, option, query, run_cli, scalar, user, write_export
from .test_output_files import SCHEME, DirectoryFileSystem

# Concurrent imports, rollbacks and wipes: several imports each; CI runs them.
pytestmark = pytest.mark.slow

SNAPSHOT = Path("release-snapshots") / "test_at_24_7_0.json"
_SCRIPT = Path(sys.executable).parent / "relocate"
RELOCATE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "relocate.cli.main"]
TIMEOUT = 240


# ---------------------------------------------------------------------------------------
# Running an import in the background, held still


def launch(dsn: str, scope: str, src: Path, import_uuid: str) -> subprocess.Popen:
    """``relocate import`` in its own process group, with one connection slot."""
    argv = [
        *RELOCATE, "import", scope, str(src), "--dsn", dsn, "--no-prompt", "--silent",
        "--import-uuid", import_uuid, "--max-db-connections", "1",
    ]  # fmt: skip
    return subprocess.Popen(
        argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        return -1, f"timed out\n{err}"
    return proc.returncode, err


def wait_until(done: Callable[[], bool], proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        if proc.poll() is not None:
            pytest.fail(f"the import ended before {what}: {finish(proc)}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


def hold_slot(dsn: str, import_uuid: str) -> psycopg.Connection:
    """A connection holding the one connection slot of ``import_uuid``."""
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SELECT pg_advisory_lock(%s, 0)", (slot_key(import_uuid),))
    return conn


def status(dsn: str, import_uuid: str) -> str | None:
    rows = query(dsn, "SELECT status FROM relocate_import WHERE import_uuid = %s", (import_uuid,))
    return rows[0][0] if rows else None


def ledger_rows(dsn: str, import_uuid: str) -> int:
    return scalar(
        dsn, "SELECT count(*) FROM relocate_pk_map WHERE import_uuid = %s", (import_uuid,)
    )


def per_model(dsn: str, import_uuid: str) -> dict[str, int]:
    return dict(
        query(
            dsn,
            "SELECT model, count(*) FROM relocate_pk_map WHERE import_uuid = %s GROUP BY model",
            (import_uuid,),
        )
    )


def running_and_held(
    dsn: str, scope: str, src: Path
) -> tuple[str, psycopg.Connection, subprocess.Popen]:
    """An import recorded as running whose writers wait for the slot the test holds."""
    import_uuid = uuid.uuid4().hex
    slot = hold_slot(dsn, import_uuid)
    proc = launch(dsn, scope, src, import_uuid)
    wait_until(lambda: status(dsn, import_uuid) == "running", proc, "it was recorded")
    return import_uuid, slot, proc


@pytest.fixture
def global_export(tmp_path: Path) -> Path:
    return write_export(tmp_path / "global.json", [user(1, "root")])


# ---------------------------------------------------------------------------------------
# 6. Output paths are checked before the first write


@pytest.fixture
def uri_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The root of ``relocatetest://`` (a Beam filesystem kept as files) for this test."""
    root = tmp_path / "bucket"
    root.mkdir()
    monkeypatch.setattr(DirectoryFileSystem, "root", root)
    monkeypatch.setattr(DirectoryFileSystem, "created", [])
    return root


BAD_PATHS: dict[str, Callable[[Path, Path], str]] = {
    "missing folder": lambda tmp, src: str(tmp / "no" / "such" / "folder" / "out.json"),
    "a directory": lambda tmp, src: str(tmp),
    "under a file": lambda tmp, src: str(src / "out.json"),
    "uri under an object": lambda tmp, src: f"{SCHEME}://taken/out.json",
}


@pytest.mark.parametrize("flag", ["--report-file", "--findings-file"])
@pytest.mark.parametrize("kind", list(BAD_PATHS))
def test_16_06_an_output_path_that_cannot_be_written_is_refused_before_any_write(
    flag: str, kind: str, db_dsn: str, tmp_path: Path, uri_root: Path
) -> None:
    (uri_root / "taken").write_text("an object where a folder would be")
    src = write_export(tmp_path / "users.json", [user(1, "alice"), user(2, "bob")])
    bad = BAD_PATHS[kind](tmp_path, src)
    run = import_export(db_dsn, "users", src, flag, bad)
    assert run.code == 2, run.err
    assert f"Error: {flag}: " in run.err and bad in run.err, run.err
    assert "Traceback" not in run.err
    # Before the first write: no row, and the import was not even recorded.
    assert count(db_dsn, "auth_user") == 0
    assert count(db_dsn, "relocate_import") == 0
    assert count(db_dsn, "relocate_pk_map") == 0


def test_16_06_a_good_report_path_is_probed_without_losing_what_it_holds(
    db_dsn: str, tmp_path: Path
) -> None:
    """The probe appends nothing and truncates nothing; a new path is not left behind by
    an import that fails before the end (here: the findings file is the one refused)."""
    src = write_export(tmp_path / "users.json", [user(1, "alice")])
    kept = tmp_path / "report.json"
    kept.write_text("an earlier report")
    fresh = tmp_path / "fresh-report.json"
    for report in (kept, fresh):
        run = import_export(
            db_dsn, "users", src, "--report-file", str(report),
            "--findings-file", str(tmp_path / "missing" / "f.json"),
        )  # fmt: skip
        assert run.code == 2, run.err
    assert kept.read_text() == "an earlier report"
    assert not fresh.exists()
    run = import_export(db_dsn, "users", src, "--report-file", str(fresh))
    assert run.code == 0, run.err
    assert '"rows"' in fresh.read_text()


# ---------------------------------------------------------------------------------------
# 7. A Global import and the imports it would wipe


@pytest.mark.parametrize("running_scope", ["organizations", "config", "global"])
def test_16_07_a_global_import_refuses_while_another_import_runs(
    running_scope: str,
    db_dsn: str,
    another_db_dsn: str,
    fixtures_dir: Path,
    global_export: Path,
) -> None:
    snapshot = fixtures_dir / SNAPSHOT
    reference = uuid.uuid4().hex
    clean = import_export(another_db_dsn, running_scope, snapshot, "--import-uuid", reference)
    assert clean.code == 0, clean.err
    running, slot, proc = running_and_held(db_dsn, running_scope, snapshot)
    try:
        (started,) = query(
            db_dsn, "SELECT started_at FROM relocate_import WHERE import_uuid = %s", (running,)
        )[0]
        wiper = uuid.uuid4().hex
        run = import_export(db_dsn, "global", global_export, "--import-uuid", wiper)
        assert run.code == 1, run.err
        assert "refusing the Global import" in run.err
        assert f"import {running} ({running_scope}, started " in run.err, run.err
        assert started.isoformat(timespec="seconds") in run.err
        assert "Traceback" not in run.err
        assert status(db_dsn, wiper) is None  # refused before it was recorded
        assert status(db_dsn, running) == "running"
    finally:
        slot.close()
    code, err = finish(proc)
    assert code == 0, err
    assert status(db_dsn, running) == "done"
    assert per_model(db_dsn, running) == per_model(another_db_dsn, reference)


def test_16_07_the_wipe_itself_refuses_while_another_import_runs(
    db_dsn: str, fixtures_dir: Path
) -> None:
    """The check at launch can be outrun (an import may start while the Global one reads
    its export), so the wipe step checks again, under a lock that keeps imports from
    starting until it is done."""
    from relocate.db.imports import ImportConflict
    from relocate.db.wipe import wipe_for_import

    running, slot, proc = running_and_held(db_dsn, "organizations", fixtures_dir / SNAPSHOT)
    try:
        with psycopg.connect(db_dsn) as conn:
            conn.execute(
                "INSERT INTO sentry_option (key, value, last_updated, last_updated_by) "
                "VALUES ('keep.me', '\"here\"', now(), 'unknown')"
            )
            conn.commit()
            with pytest.raises(ImportConflict, match=f"import {running} \\(organizations"):
                wipe_for_import(conn, Registry.load(), uuid.uuid4().hex)
        assert count(db_dsn, "sentry_option") == 1  # nothing wiped
        assert status(db_dsn, running) == "running"
    finally:
        slot.close()
    assert finish(proc)[0] == 0


def test_16_07_a_crashed_import_does_not_hold_up_a_global_import(
    db_dsn: str, fixtures_dir: Path, global_export: Path
) -> None:
    """'running' stays on an import whose process died; nobody holds its lock, so it is
    not live: the Global import wipes it (and marks it so)."""
    running, slot, proc = running_and_held(db_dsn, "organizations", fixtures_dir / SNAPSHOT)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    slot.close()
    assert status(db_dsn, running) == "running"
    run = import_export(db_dsn, "global", global_export)
    assert run.code == 0, run.err
    assert status(db_dsn, running) == "wiped"
    assert query(db_dsn, "SELECT username FROM auth_user") == [("root",)]


def test_16_07_a_detached_import_counts_as_running_until_marked(
    db_dsn: str, global_export: Path
) -> None:
    """A detached import's launcher has exited; relocate cannot see its job, so a
    'running' detached import blocks a Global import until it is marked as ended."""
    detached = uuid.uuid4().hex
    with psycopg.connect(db_dsn) as conn:
        conn.execute(
            "INSERT INTO relocate_import (import_uuid, scope, flags) "
            "VALUES (%s, 'organizations', '{\"detached\": true}')",
            (detached,),
        )
    run = import_export(db_dsn, "global", global_export)
    assert run.code == 1, run.err
    assert f"import {detached} (organizations" in run.err and "detached" in run.err
    mark = f"UPDATE relocate_import SET status = 'failed' WHERE import_uuid = '{detached}'"
    assert mark in run.err
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(mark)
    run = import_export(db_dsn, "global", global_export)
    assert run.code == 0, run.err


def test_16_07_an_import_whose_rows_were_wiped_fails(
    db_dsn: str, another_db_dsn: str, fixtures_dir: Path
) -> None:
    """A wipe that deleted rows of a running import (one relocate could not see as live:
    an older relocate's Global import, a wipe by hand) makes that import fail at its end,
    however its stages went; rerun with its UUID, it imports everything again."""
    from relocate.db.wipe import wipe_database

    snapshot = fixtures_dir / SNAPSHOT
    reference = uuid.uuid4().hex
    assert (
        import_export(another_db_dsn, "organizations", snapshot, "--import-uuid", reference).code
        == 0
    )
    running, slot, proc = running_and_held(db_dsn, "organizations", snapshot)
    key = slot_key(running)
    try:
        # Let it write until it has committed rows, then take the slot back between two
        # bundles: its writers wait again, with nothing open. A blocking request queues,
        # and PostgreSQL grants it when the writer lets go of the slot at the end of its
        # bundle, before the writer's next try (which does not queue).
        slot.execute("SELECT pg_advisory_unlock(%s, 0)", (key,))
        while not ledger_rows(db_dsn, running):
            assert proc.poll() is None, finish(proc)
            time.sleep(0.005)
        slot.execute("SELECT pg_advisory_lock(%s, 0)", (key,))
        assert proc.poll() is None, "the import ended before the slot was taken back"
        assert status(db_dsn, running) == "running"
        wiper = uuid.uuid4().hex
        with psycopg.connect(db_dsn) as conn:
            wipe_database(conn, Registry.load(), keep_import=wiper)
    finally:
        slot.close()
    code, err = finish(proc)
    assert code == 1, err
    assert f"Global import {wiper} wiped the target" in err, err
    assert f"Rerun with --import-uuid {running}" in err
    assert "Traceback" not in err
    assert status(db_dsn, running) == "failed"
    run = import_export(db_dsn, "organizations", snapshot, "--import-uuid", running)
    assert run.code == 0, run.err
    assert per_model(db_dsn, running) == per_model(another_db_dsn, reference)


# ---------------------------------------------------------------------------------------
# 8. Rollback out of order


def rollback(dsn: str, import_uuid: str):
    return run_cli("rollback", "--import-uuid", import_uuid, "--dsn", dsn)


def config_import(dsn: str, path: Path, model: str, value: str, *flags: str) -> str:
    import_uuid = uuid.uuid4().hex
    src = write_export(path, [option(1, "mail.from", f'"{value}"', model=model)])
    run = import_export(dsn, "config", src, "--import-uuid", import_uuid, *flags)
    assert run.code == 0, run.err
    return import_uuid


TABLES = {"sentry.option": "sentry_option", "sentry.controloption": "sentry_controloption"}


@pytest.mark.parametrize("model", list(TABLES))
def test_16_08_rollback_is_refused_while_a_later_overwrite_of_its_rows_stands(
    model: str, db_dsn: str, tmp_path: Path
) -> None:
    table = TABLES[model]

    def value() -> list[tuple]:
        return query(db_dsn, f"SELECT value FROM {table} WHERE key = 'mail.from'")  # noqa: S608

    config_import(db_dsn, tmp_path / "o.json", model, "original")
    a = config_import(db_dsn, tmp_path / "a.json", model, "by-a", "--overwrite-configs")
    b = config_import(db_dsn, tmp_path / "b.json", model, "by-b", "--overwrite-configs")
    row_id = scalar(db_dsn, f"SELECT id FROM {table} WHERE key = 'mail.from'")  # noqa: S608
    assert value() == [('"by-b"',)]
    refused = rollback(db_dsn, a)
    assert refused.code == 1, refused.err
    assert f"import {b} (config, started " in refused.err
    assert f"{model} id {row_id}" in refused.err
    assert "Roll those imports back first" in refused.err
    assert value() == [('"by-b"',)]  # nothing restored
    assert status(db_dsn, a) == "done"
    assert rollback(db_dsn, b).code == 0
    assert value() == [('"by-a"',)]
    assert rollback(db_dsn, a).code == 0
    assert value() == [('"original"',)]


def test_16_08_rollback_is_refused_when_a_later_import_overwrote_a_row_it_created(
    db_dsn: str, tmp_path: Path
) -> None:
    a = config_import(db_dsn, tmp_path / "a.json", "sentry.option", "by-a")
    b = config_import(db_dsn, tmp_path / "b.json", "sentry.option", "by-b", "--overwrite-configs")
    refused = rollback(db_dsn, a)
    assert refused.code == 1 and f"import {b} (config" in refused.err, refused.err
    assert query(db_dsn, "SELECT value FROM sentry_option") == [('"by-b"',)]
    assert rollback(db_dsn, b).code == 0
    assert query(db_dsn, "SELECT value FROM sentry_option") == [('"by-a"',)]
    assert rollback(db_dsn, a).code == 0
    assert query(db_dsn, "SELECT value FROM sentry_option") == []


def test_16_08_an_earlier_overwrite_does_not_block_a_later_rollback(
    db_dsn: str, tmp_path: Path
) -> None:
    """Rolled back newest first, each import restores what it found."""
    config_import(db_dsn, tmp_path / "o.json", "sentry.option", "original")
    a = config_import(db_dsn, tmp_path / "a.json", "sentry.option", "by-a", "--overwrite-configs")
    b = config_import(db_dsn, tmp_path / "b.json", "sentry.option", "by-b", "--overwrite-configs")
    assert rollback(db_dsn, b).code == 0
    assert query(db_dsn, "SELECT value FROM sentry_option") == [('"by-a"',)]
    assert rollback(db_dsn, a).code == 0
    assert query(db_dsn, "SELECT value FROM sentry_option") == [('"original"',)]


# ---------------------------------------------------------------------------------------
# 9. An import UUID is bound to its scope, its export and its flags

FIRST = [user(1, "alice"), user(2, "bob")]
SECOND = [user(1, "alice"), user(2, "bob"), user(3, "carol")]

#: variant -> (second run: scope, export, flags, through stdin), what the refusal says.
MISMATCHES = {
    "another export": (("users", "second", (), False), "started from another export"),
    "another export on stdin": (("users", "second", (), True), "started from another export"),
    "another scope": (("config", "first", (), False), "started in the users scope"),
    "another filter": (
        ("users", "first", ("--filter-usernames", "alice"), False),
        "--filter-usernames was not given then, is alice now",
    ),
    "merge-users": (("users", "first", ("--merge-users",), False), "--merge-users was not given"),
}


def state(dsn: str) -> tuple:
    return (
        query(dsn, "SELECT username FROM auth_user ORDER BY username"),
        query(dsn, "SELECT import_uuid, scope, status, flags FROM relocate_import"),
        count(dsn, "relocate_pk_map"),
    )


def rerun(
    dsn: str, scope: str, src: Path, flags: tuple[str, ...], stdin: bool,
    monkeypatch: pytest.MonkeyPatch,
):  # fmt: skip
    if not stdin:
        return import_export(dsn, scope, src, *flags)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(src.read_bytes())))
    return import_export(dsn, scope, "-", *flags)


@pytest.mark.parametrize("variant", list(MISMATCHES))
def test_16_09_a_rerun_that_does_not_match_its_import_uuid_is_refused(
    variant: str, db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exports = {
        "first": write_export(tmp_path / "first.json", FIRST),
        "second": write_export(tmp_path / "second.json", SECOND),
    }
    import_uuid = uuid.uuid4().hex
    first = import_export(db_dsn, "users", exports["first"], "--import-uuid", import_uuid)
    assert first.code == 0, first.err
    before = state(db_dsn)
    (scope, name, flags, stdin), why = MISMATCHES[variant]
    run = rerun(
        db_dsn, scope, exports[name], ("--import-uuid", import_uuid, *flags), stdin, monkeypatch
    )
    assert run.code == 1, run.err
    assert f"import {import_uuid} exists and this run does not match it" in run.err
    assert why in run.err, run.err
    assert "leave out --import-uuid to start a new import" in run.err
    assert "Traceback" not in run.err
    assert state(db_dsn) == before  # nothing merged, the import's record untouched


@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
def test_16_09_a_matching_rerun_resumes(
    stdin: bool, db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same export (a file, or the same bytes on standard input) and flags resume."""
    src = write_export(tmp_path / "first.json", FIRST)
    import_uuid = uuid.uuid4().hex
    flags = ("--import-uuid", import_uuid, "--merge-users")
    assert import_export(db_dsn, "users", src, *flags).code == 0
    before = state(db_dsn)
    run = rerun(db_dsn, "users", src, flags, stdin, monkeypatch)
    assert run.code == 0, run.err
    assert state(db_dsn) == before
    digest = scalar(db_dsn, "SELECT source_digest FROM relocate_import")
    assert digest == f"sha256:{hashlib.sha256(src.read_bytes()).hexdigest()}"


# ---------------------------------------------------------------------------------------
# 10. A target without the schema


def public_tables(dsn: str) -> list[str]:
    return [r[0] for r in query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


@pytest.mark.parametrize("scope", ["users", "organizations", "config", "global"])
def test_16_10_a_target_without_the_schema_is_named_before_the_export_is_read(
    scope: str, empty_db_dsn: str, tmp_path: Path
) -> None:
    src = tmp_path / "not-an-export.json"
    src.write_text("this is not read: the target is checked first")
    run = import_export(empty_db_dsn, scope, src)
    assert run.code == 1, run.err
    assert "the target database has no Sentry schema" in run.err, run.err
    assert "relocate schema create --dsn" in run.err
    assert "Traceback" not in run.err
    assert public_tables(empty_db_dsn) == []  # nothing created in the wrong database


def test_16_10_relocate_s_own_tables_are_not_a_schema(empty_db_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(empty_db_dsn) as conn:
        for statement in LEDGER_DDL:
            conn.execute(statement)
    src = write_export(tmp_path / "users.json", [user(1, "alice")])
    run = import_export(empty_db_dsn, "users", src)
    assert run.code == 1, run.err
    assert "has no Sentry schema (no table auth_user" in run.err, run.err


def test_16_10_a_schema_without_a_core_table_of_the_scope_is_refused(
    db_dsn: str, tmp_path: Path
) -> None:
    with psycopg.connect(db_dsn) as conn:
        conn.execute("DROP TABLE sentry_organization CASCADE")
    src = write_export(tmp_path / "users.json", [user(1, "alice")])
    run = import_export(db_dsn, "organizations", src)
    assert run.code == 1, run.err
    assert "lacks tables of Sentry's schema (no table sentry_organization" in run.err, run.err
    # A users import does not need the table.
    assert import_export(db_dsn, "users", src).code == 0


def test_16_10_a_partial_schema_imports_what_it_has(
    db_dsn: str, fixtures_dir: Path, tmp_path: Path
) -> None:
    """Tables missing beside the core ones: their rows are skipped and reported, as
    before, and the chunk records are left out when their tables are missing."""
    gone = ("sentry_projectkey", "sentry_regionimportchunk", "sentry_controlimportchunk",
            "sentry_controlimportchunkreplica")  # fmt: skip
    with psycopg.connect(db_dsn) as conn:
        for table in gone:
            conn.execute(f"DROP TABLE {table} CASCADE")  # test-owned names
    report = tmp_path / "report.json"
    run = import_export(
        db_dsn, "organizations", fixtures_dir / SNAPSHOT, "--report-file", str(report)
    )
    assert run.code == 0, run.err
    assert count(db_dsn, "sentry_organization") == 2
    assert "has no table `sentry_projectkey`" in report.read_text()
    import_uuid = scalar(db_dsn, "SELECT import_uuid::text FROM relocate_import")
    assert rollback(db_dsn, import_uuid).code == 0
    assert count(db_dsn, "sentry_organization") == 0
