"""Reliability: retried batches, crashes and concurrent runs end exactly as a clean run.

Every run here is compared with a clean import of the same export through
``tests.canonical.canonical_dump`` (ids replaced by ledger identities, random columns left
out), and checked with ``tests.canonical.integrity`` (no ledger entry without its row, no
row claimed twice, no sequence behind its table) and ``natural_duplicates`` (rows equal but
for their id: as many as in the clean run).

* Retries: ``--direct_runner_bundle_repeat=2`` and ``--inject-fault`` at each point
  (in-transaction, after-commit, drop-connection) on stage-1 to stage-6 models;
* crash and resume: the import is SIGKILLed at a dozen points (during the read, in the
  middle of every stage, at 2%, 40% and 85% of the ledger, after the last row) and rerun
  with the same ``--import-uuid``;
* concurrency: two runs of one import at once, and two imports of one export at once.

The module ends by printing the figures (faults injected and survived, kill points, rows
lost and doubled) and writing them to ``REPORT_PATH``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from relocate.schemas.registry import Registry

from .canonical import (
    SIDE_EFFECT_REFERENCES,
    Tally,
    canonical_dump,
    compare,
    diff,
    integrity,
    natural_duplicates,
)
from .conftest import TEMPLATE_DB
from .helpers import TS, import_export, query, row, run_cli, scalar, write_export

pytestmark = pytest.mark.slow

REPORT_PATH = Path("/tmp/relocate-reliability.json")
_SCRIPT = Path(sys.executable).parent / "relocate"
RELOCATE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "relocate.cli.main"]
BATCH = "200"
SNAPSHOT = "release-snapshots/test_at_24_7_0.json"
#: Rows of the export that is killed and resumed (a clean run takes 7-10 s, 3-4 s of them
#: writing the ledger: 30 batches of 200 rows).
CRASH_ROWS = 6_000
#: Kill points besides the middle of each stage: fractions of the clean run's ledger.
KILL_FRACTIONS = (0.02, 0.40, 0.85)
RUN_TIMEOUT = 240

FIGURES: dict[str, Any] = {
    "faults_injected": 0,
    "faults_survived": 0,
    "bundle_repeats_survived": 0,
    "kill_points_tried": 0,
    "kill_points_reached": 0,
    "resumes_matched": 0,
    "concurrent_runs": 0,
    "concurrent_runs_matched": 0,
    "rows_lost": 0,
    "rows_doubled": 0,
    "rows_changed": 0,
    "kills": [],
    "failures": [],
}


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[dict[str, Any]]:
    """Prints the module's figures at its end and writes them to ``REPORT_PATH``."""
    start = time.monotonic()
    yield FIGURES
    FIGURES["seconds"] = round(time.monotonic() - start, 1)
    REPORT_PATH.write_text(json.dumps(FIGURES, indent=1, default=str))
    print("\nreliability figures (" + str(REPORT_PATH) + "):")
    for key, value in FIGURES.items():
        if not isinstance(value, list):
            print(f"  {key}: {value}")
    for kill in FIGURES["kills"]:
        print(f"  kill {kill}")
    for failure in FIGURES["failures"]:
        print(f"  FAILED {failure}")


def record(name: str, tally: Tally) -> None:
    FIGURES["rows_lost"] += tally.lost
    FIGURES["rows_doubled"] += tally.doubled
    FIGURES["rows_changed"] += tally.changed
    if tally:
        FIGURES["failures"].append(f"{name}: {tally}")


# ---------------------------------------------------------------------------------------
# Databases and exports shared by the module


@pytest.fixture(scope="module")
def new_db(pg_server: str, template_dsn: str) -> Iterator[Callable[..., str]]:
    """A factory of fresh databases, dropped at the module's end: ``make()`` has the target
    schema, ``make(dsn)`` is a copy of the database at ``dsn``."""
    names: list[str] = []

    def make(copy_of: str | None = None) -> str:
        name = f"t_rel_{os.getpid()}_{len(names)}"
        template = TEMPLATE_DB
        if copy_of is not None:
            template = psycopg.conninfo.conninfo_to_dict(copy_of)["dbname"]
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        names.append(name)
        return psycopg.conninfo.make_conninfo(pg_server, dbname=name)

    yield make
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability")


def generate(out: Path, rows: int, scope: str = "global", seed: int = 1) -> Path:
    if not out.exists():
        run = run_cli(
            "generate",
            str(out),
            "--rows",
            str(rows),
            "--seed",
            str(seed),
            "--scope",
            scope,
            "--quiet",
        )
        assert run.code == 0, run.err
    return out


@pytest.fixture(scope="module")
def exports(workdir: Path, fixtures_dir: Path) -> dict[str, Path]:
    """The exports under test.

    ``generated``: 3,000 generated Global rows. ``users-first``: the same rows with the
    members, then the users, moved to the front (each model's rows keep their order, so
    the import must be the same): with ``--batch-size 100`` their first batch is the
    first batch of their stage, so a fault on batch 1 fires however batches are counted.
    ``snapshot``: Sentry's 24.7.0 release snapshot (174 rows, stages 1 to 8).
    """
    generated = generate(workdir / "generated.json", 3000)
    users_first = workdir / "users-first.json"
    rows = json.loads(generated.read_text())
    front = ("sentry.organizationmember", "sentry.user")
    rows = [r for m in front for r in rows if r["model"] == m] + [
        r for r in rows if r["model"] not in front
    ]
    users_first.write_text(json.dumps(rows))
    return {"generated": generated, "users-first": users_first, "snapshot": fixtures_dir / SNAPSHOT}


@dataclass
class CleanRun:
    dsn: str
    dump: dict[str, list[tuple]]
    ledger_rows: int
    duplicates: dict[str, int]


@pytest.fixture(scope="module")
def clean(new_db: Callable[..., str], exports: dict[str, Path]) -> Callable[[str], CleanRun]:
    """The clean (uninterrupted, fault-free) import of an export, once per module."""
    done: dict[str, CleanRun] = {}

    def get(name: str) -> CleanRun:
        if name not in done:
            base = "generated" if name == "users-first" else name
            if base not in done:
                dsn = new_db()
                run = import_export(dsn, "global", exports[base], "--batch-size", BATCH)
                assert run.code == 0, run.err
                assert integrity(dsn) == {}
                ledger = scalar(dsn, "SELECT count(*) FROM relocate_pk_map")
                done[base] = CleanRun(dsn, canonical_dump(dsn), ledger, natural_duplicates(dsn))
            done[name] = done[base]
        return done[name]

    return get


SHIFT = 1_000_000


def test_the_canonical_dump_ignores_ids_and_sees_lost_doubled_and_changed_rows(
    clean: Callable[[str], CleanRun], new_db: Callable[..., str]
) -> None:
    """The checker itself: other ids are no difference; a lost, a doubled and a changed
    row are."""
    reference = clean("generated")
    dsn = new_db(reference.dsn)
    model, table = "sentry.dashboardwidgetquery", "sentry_dashboardwidgetquery"
    with psycopg.connect(dsn) as conn:
        # Other ids for one model's rows (table, ledger and chunk records alike).
        conn.execute(f"UPDATE {table} SET id = id + {SHIFT}")
        conn.execute(
            f"UPDATE relocate_pk_map SET new_pk = new_pk + {SHIFT} WHERE model = %s", (model,)
        )
        conn.execute(
            f"UPDATE sentry_regionimportchunk SET min_inserted_pk = min_inserted_pk + {SHIFT}, "
            f"max_inserted_pk = max_inserted_pk + {SHIFT}, inserted_map = (SELECT "
            f"jsonb_object_agg(key, value::bigint + {SHIFT}) FROM jsonb_each_text(inserted_map)) "
            "WHERE model = %s",
            (model,),
        )
    assert canonical_dump(dsn) == reference.dump, diff(reference.dump, canonical_dump(dsn))
    # An imported option that is not one a project's post_save also creates (those rows are
    # side effects too, and losing one shows in relocate_side_effect as well).
    lost_id = scalar(
        dsn,
        "SELECT min(id) FROM sentry_projectoptions WHERE key NOT IN "
        "('sentry:relay-rev', 'sentry:relay-rev-lastchange', 'sentry:option-epoch')",
    )
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM sentry_projectoptions WHERE id = %s", (lost_id,))
        conn.execute(
            "INSERT INTO sentry_useroption (user_id, project_id, organization_id, key, value) "
            "SELECT user_id, project_id, organization_id, key, value FROM sentry_useroption "
            "ORDER BY id LIMIT 1"
        )
        conn.execute(
            "UPDATE sentry_projectkey SET project_id = (SELECT max(id) FROM sentry_project) "
            "WHERE id = (SELECT min(id) FROM sentry_projectkey)"
        )
    changed_dump = canonical_dump(dsn)
    assert compare(reference.dump, changed_dump) == Tally(lost=1, doubled=1, changed=1), diff(
        reference.dump, changed_dump
    )
    assert natural_duplicates(dsn) != reference.duplicates
    assert integrity(dsn)["ledger_without_row"] == [
        (
            "sentry.projectoption",
            scalar(
                dsn,
                "SELECT old_pk FROM relocate_pk_map WHERE model = "
                "'sentry.projectoption' AND new_pk = %s",
                (lost_id,),
            ),
        )
    ]


# ---------------------------------------------------------------------------------------
# Retries: bundle repeats and injected faults


@dataclass(frozen=True)
class Case:
    export: str
    flags: tuple[str, ...]
    fault: str | None = None


def fault(export: str, spec: str, batch: str = BATCH) -> Case:
    return Case(export, ("--batch-size", batch), spec)


CASES = [
    pytest.param(
        Case("generated", ("--batch-size", BATCH, "--direct_runner_bundle_repeat=2")),
        id="generated-bundle-repeat",
    ),
    pytest.param(
        fault("generated", "in-transaction:sentry.user:1"),
        id="generated-in-transaction-user",
    ),
    pytest.param(
        fault("generated", "after-commit:sentry.user:1"),
        id="generated-after-commit-user",
    ),
    pytest.param(
        fault("generated", "drop-connection:sentry.organizationmember:1"),
        id="generated-drop-connection-member",
    ),
    pytest.param(
        fault("generated", "in-transaction:sentry.integration:1"),
        id="generated-in-transaction-integration",
    ),
    pytest.param(
        fault("generated", "in-transaction:sentry.email:1"),
        id="generated-in-transaction-email",
    ),
    pytest.param(
        fault("generated", "in-transaction:sentry.projectoption:2"),
        id="generated-in-transaction-projectoption",
    ),
    pytest.param(
        fault("generated", "after-commit:sentry.useremail:1"), id="generated-after-commit-useremail"
    ),
    pytest.param(
        fault("generated", "drop-connection:sentry.alertruletrigger:1"),
        id="generated-drop-connection-alertruletrigger",
    ),
    pytest.param(
        fault("users-first", "in-transaction:sentry.user:1", "100"),
        id="users-first-in-transaction-user",
    ),
    pytest.param(
        fault("users-first", "after-commit:sentry.user:1", "100"),
        id="users-first-after-commit-user",
    ),
    pytest.param(
        fault("users-first", "drop-connection:sentry.organizationmember:1", "100"),
        id="users-first-drop-connection-member",
    ),
    pytest.param(
        fault("users-first", "after-commit:sentry.organizationmember:1", "100"),
        id="users-first-after-commit-member",
    ),
    pytest.param(
        Case("snapshot", ("--batch-size", BATCH, "--direct_runner_bundle_repeat=2")),
        id="snapshot-bundle-repeat",
    ),
    pytest.param(
        fault("snapshot", "in-transaction:sentry.user:1"),
        id="snapshot-in-transaction-user",
    ),
    pytest.param(
        fault("snapshot", "in-transaction:sentry.controloption:1"),
        id="snapshot-in-transaction-controloption",
    ),
    pytest.param(
        fault("snapshot", "after-commit:sentry.orgauthtoken:1"),
        id="snapshot-after-commit-orgauthtoken",
    ),
    pytest.param(
        fault("snapshot", "drop-connection:sentry.alertruletriggeraction:1"),
        id="snapshot-drop-connection-alertruletriggeraction",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_retried_batches_end_as_the_clean_run(
    case: Case,
    clean: Callable[[str], CleanRun],
    new_db: Callable[..., str],
    exports: dict[str, Path],
    tmp_path: Path,
) -> None:
    """A repeated bundle or a failed-and-retried batch changes nothing in the result."""
    reference = clean(case.export)
    dsn = new_db()
    marker = tmp_path / "fault.marker"
    flags = list(case.flags)
    if case.fault:
        flags += ["--inject-fault", f"{case.fault}:{marker}"]
    run = import_export(dsn, "global", exports[case.export], *flags)
    fired = marker.exists()
    FIGURES["faults_injected"] += fired
    assert run.code == 0, run.err
    dump = canonical_dump(dsn)
    tally = compare(reference.dump, dump)
    record(f"{case.export} {case.fault or 'bundle repeat'}", tally)
    assert dump == reference.dump, diff(reference.dump, dump)
    assert integrity(dsn) == {}
    assert natural_duplicates(dsn) == reference.duplicates
    if case.fault:
        assert fired, f"the fault {case.fault} never fired"
        FIGURES["faults_survived"] += 1
    else:
        FIGURES["bundle_repeats_survived"] += 1


# ---------------------------------------------------------------------------------------
# Crash and resume


@dataclass
class Launched:
    proc: subprocess.Popen
    started: float


def launch(dsn: str, src: Path, import_uuid: str, scope: str = "global") -> Launched:
    """Starts ``relocate import`` as its own process group."""
    argv = [
        *RELOCATE,
        "import",
        scope,
        str(src),
        "--dsn",
        dsn,
        "--no-prompt",
        "--silent",
        "--import-uuid",
        import_uuid,
        "--batch-size",
        BATCH,
    ]
    proc = subprocess.Popen(
        argv,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Launched(proc, time.monotonic())


def run_here(dsn: str, src: Path, import_uuid: str) -> tuple[int, str]:
    """Runs the same import as ``launch`` in this process (nothing kills it: a process
    and Beam's imports of its own would only add time)."""
    run = import_export(
        dsn, "global", src, "--silent", "--import-uuid", import_uuid, "--batch-size", BATCH
    )
    return run.code, run.err


def finish(launched: Launched, timeout: float = RUN_TIMEOUT) -> tuple[int, str]:
    try:
        _, err = launched.proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(launched.proc.pid, signal.SIGKILL)
        _, err = launched.proc.communicate()
        return -1, f"timed out after {timeout} s\n{err}"
    return launched.proc.returncode, err


def progress(conn: psycopg.Connection, import_uuid: str) -> tuple[bool, int, int | None]:
    """(import recorded, ledger rows, highest stage) of one import, as committed."""
    try:
        recorded = conn.execute(
            "SELECT count(*) FROM relocate_import WHERE import_uuid = %s", (import_uuid,)
        ).fetchone()[0]
        rows, stage = conn.execute(
            "SELECT count(*), max(stage) FROM relocate_pk_map WHERE import_uuid = %s",
            (import_uuid,),
        ).fetchone()
    except psycopg.errors.UndefinedTable:
        return False, 0, None
    return bool(recorded), rows, stage


@dataclass(frozen=True)
class KillPoint:
    """When to SIGKILL: once the ledger holds more than ``after_rows`` rows of the import
    (``None``: as soon as the import is recorded, before any row), ``delay`` s later."""

    name: str
    after_rows: int | None
    delay: float = 0.0
    #: Whether to wait for more rows than the previous kill saw (the finish point's
    #: state differs by its delay, not by its rows).
    past_floor: bool = True


def kill_points(stages: list[tuple[int, int]]) -> list[KillPoint]:
    """During the read, in the middle of every stage, at a few fractions of the ledger, and
    after its last row (while sequences and chunk records are written).

    ``stages``: (stage, ledger rows) of the clean run.
    """
    total = sum(n for _, n in stages)
    thresholds: dict[int, str] = {}
    done = 0
    for stage, n in stages:
        thresholds.setdefault(done + n // 2, f"middle of stage {stage}")
        done += n
    for fraction in KILL_FRACTIONS:
        thresholds.setdefault(int(total * fraction), f"{fraction:.0%} of the rows")
    return [
        KillPoint("read", None),
        *(KillPoint(name, rows) for rows, name in sorted(thresholds.items())),
        KillPoint("finish", total - 1, delay=0.3, past_floor=False),
    ]


def run_and_kill(dsn: str, src: Path, import_uuid: str, point: KillPoint, floor: int) -> dict:
    """Runs the import and SIGKILLs its process group at ``point``, but not before the
    ledger holds more than ``floor`` rows (so that no two kill points are the same)."""
    launched = launch(dsn, src, import_uuid)
    with psycopg.connect(dsn, autocommit=True) as conn:
        while launched.proc.poll() is None:
            recorded, rows, stage = progress(conn, import_uuid)
            if point.after_rows is None:
                due = recorded and rows == 0
            else:
                due = rows > max(point.after_rows, floor if point.past_floor else 0)
            if due:
                time.sleep(point.delay)
                if launched.proc.poll() is not None:
                    break
                os.killpg(launched.proc.pid, signal.SIGKILL)
                launched.proc.communicate()
                return {
                    "killed": True,
                    "after_s": round(time.monotonic() - launched.started, 2),
                    "ledger_rows": rows,
                    "stage": stage,
                }
            time.sleep(0.02)
    _, err = launched.proc.communicate()
    return {"killed": False, "exit": launched.proc.returncode, "err": err[-2000:]}


def sessions_gone(dsn: str, timeout: float = 60) -> None:
    """Waits until no other session is connected to ``dsn``'s database."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the killed import's sessions stayed"
            time.sleep(0.05)


def scratch_tables(dsn: str) -> list[tuple]:
    """The held and staging tables in the target (relocate.db.run_tables)."""
    return query(
        dsn,
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND "
        "(relname LIKE 'relocate\\_held\\_%' OR relname LIKE 'relocate\\_check\\_%')",
    )


@pytest.fixture(scope="module")
def crash_export(workdir: Path) -> Path:
    return generate(workdir / "crash.json", CRASH_ROWS)


@pytest.mark.slow
def test_killed_imports_resume_to_the_clean_result(
    new_db: Callable[..., str], crash_export: Path
) -> None:
    """SIGKILL at a dozen points, then the same command again: as if never interrupted."""
    import_uuid = uuid.uuid4().hex
    clean_dsn = new_db()
    start = time.monotonic()
    code, err = run_here(clean_dsn, crash_export, import_uuid)
    FIGURES["crash_clean_run_s"] = round(time.monotonic() - start, 1)
    assert code == 0, err
    reference = canonical_dump(clean_dsn)
    duplicates = natural_duplicates(clean_dsn)
    stages = query(clean_dsn, "SELECT stage, count(*) FROM relocate_pk_map GROUP BY 1 ORDER BY 1")
    FIGURES["crash_export_ledger_rows"] = dict(stages)
    failures = []
    floor = 0
    for point in kill_points(stages):
        dsn = new_db()
        FIGURES["kill_points_tried"] += 1
        kill = {"point": point.name, **run_and_kill(dsn, crash_export, import_uuid, point, floor)}
        FIGURES["kill_points_reached"] += kill["killed"]
        floor = max(floor, kill.get("ledger_rows", 0))
        sessions_gone(dsn)  # the killed run's locks with them
        code, err = run_here(dsn, crash_export, import_uuid)
        kill["resume_exit"] = code
        dump = canonical_dump(dsn) if code == 0 else {}
        record(f"resume after kill at {point.name}", compare(reference, dump))
        problems = integrity(dsn)
        if scratch_tables(dsn):  # the killed run's, dropped by the resume; its own
            problems["scratch_tables_left"] = scratch_tables(dsn)
        if natural_duplicates(dsn) != duplicates:
            problems["natural_duplicates"] = [natural_duplicates(dsn), duplicates]
        kill["matched"] = code == 0 and dump == reference and not problems
        FIGURES["resumes_matched"] += kill["matched"]
        FIGURES["kills"].append({k: v for k, v in kill.items() if k != "err"})
        if not kill["matched"]:
            failures.append(
                f"kill at {point.name} ({kill}): exit {code} {err[-1500:]}\n{problems}\n"
                + diff(reference, dump)
            )
    assert not failures, "\n\n".join(failures)
    killed = [k for k in FIGURES["kills"] if k["killed"]]
    assert len(killed) >= 10, FIGURES["kills"]
    assert len({(k["ledger_rows"], k["point"] == "finish") for k in killed}) >= 10
    hit = {k["stage"] for k in killed if k["stage"]}
    assert hit == {stage for stage, _ in stages}, f"kills hit stages {sorted(hit)} only"


# ---------------------------------------------------------------------------------------
# Concurrent runs


def wait_for_rows(dsn: str, import_uuid: str, launched: Launched, timeout: float = 120) -> None:
    """Returns once the import committed its first ledger rows (or ended)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline and launched.proc.poll() is None:
            if progress(conn, import_uuid)[1]:
                return
            time.sleep(0.02)


@pytest.mark.parametrize("start", ["together", "second-after-first-rows"])
def test_two_runs_of_one_import_at_once_write_everything_once(
    start: str,
    new_db: Callable[..., str],
    clean: Callable[[str], CleanRun],
    exports: dict[str, Path],
) -> None:
    """Same --import-uuid, two processes at once (started together, or the second once
    the first has written rows): the clean result, every row once."""
    reference = clean("generated")
    dsn = new_db()
    import_uuid = uuid.uuid4().hex
    runs = [launch(dsn, exports["generated"], import_uuid)]
    if start != "together":
        wait_for_rows(dsn, import_uuid, runs[0])
    runs.append(launch(dsn, exports["generated"], import_uuid))
    results = [finish(r) for r in runs]
    FIGURES["concurrent_runs"] += 1
    assert [code for code, _ in results] == [0, 0], results
    dump = canonical_dump(dsn)
    record("two runs of one import", compare(reference.dump, dump))
    assert dump == reference.dump, diff(reference.dump, dump)
    assert integrity(dsn) == {}
    assert natural_duplicates(dsn) == reference.duplicates
    assert scalar(dsn, "SELECT count(*) FROM relocate_pk_map") == reference.ledger_rows
    FIGURES["concurrent_runs_matched"] += 1


def wait_for_lock_wait(dsn: str, pid: int | None = None, timeout: float = 60) -> None:
    """Returns once the backend ``pid`` (default: any relocate connection) waits for a
    lock."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE NOT l.granted AND (a.pid = %s OR (%s::int IS NULL AND "
                "a.application_name = 'relocate'))",
                (pid, pid),
            ).fetchone()[0]
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid or 'relocate'} never waited for a lock")


def test_a_global_wipe_never_erases_rows_the_same_import_committed(
    new_db: Callable[..., str],
) -> None:
    """The wipe's check (no ledger row yet) and its TRUNCATE must be atomic with respect to
    a concurrent run of the same import committing its first batch.

    A run of the import holds an open batch (ledger row claimed, user row written); the
    second run's wipe starts (it sees no committed ledger row) and waits for the batch's
    locks; the batch commits. The wipe must then keep the committed row (or not run).
    """
    from relocate.db.wipe import wipe_for_import

    dsn = new_db()
    import_uuid = uuid.uuid4().hex
    registry = Registry.load()
    with psycopg.connect(dsn) as writer, psycopg.connect(dsn) as wiper:
        writer.execute(
            "INSERT INTO auth_user (id, password, username, first_name, email) "
            "VALUES (1, '', 'u', '', 'u@example.com')"
        )
        writer.execute(
            "INSERT INTO relocate_pk_map (import_uuid, model, old_pk, new_pk, kind, ordinal, "
            "stage) VALUES (%s, 'sentry.user', 7, 1, 'Inserted', 1, 1)",
            (import_uuid,),
        )
        outcome: list[Any] = []
        thread = threading.Thread(
            target=lambda: outcome.append(wipe_for_import(wiper, registry, import_uuid))
        )
        thread.start()
        wait_for_lock_wait(dsn, wiper.info.backend_pid)
        writer.commit()
        thread.join(timeout=30)
        assert not thread.is_alive()
    ledger = scalar(dsn, "SELECT count(*) FROM relocate_pk_map")
    users = scalar(dsn, "SELECT count(*) FROM auth_user")
    assert (ledger, users) == (1, 1), f"wipe ran: {outcome}; ledger {ledger}, users {users}"


def test_two_imports_of_one_export_at_once_make_two_copies(
    new_db: Callable[..., str], workdir: Path
) -> None:
    """Two organizations imports (different uuids) at once: both succeed, two copies."""
    src = generate(workdir / "orgs.json", 1600, scope="organizations")
    rows = json.loads(src.read_text())
    slugs = sorted(r["fields"]["slug"] for r in rows if r["model"] == "sentry.organization")
    dsn = new_db()
    uuids = [uuid.uuid4().hex, uuid.uuid4().hex]
    runs = [launch(dsn, src, u, scope="organizations") for u in uuids]
    results = [finish(r) for r in runs]
    FIGURES["concurrent_runs"] += 1
    assert [code for code, _ in results] == [0, 0], results
    per_import = query(
        dsn,
        "SELECT import_uuid::text, count(*) FROM relocate_pk_map GROUP BY 1 ORDER BY 1",
    )
    registry = Registry.load()
    admitted = sum(
        1
        for r in rows
        if r["model"] in registry and registry[r["model"]].admitted_by("organizations")
    )
    assert [n for _, n in per_import] == [admitted, admitted], per_import
    assert integrity(dsn) == {}
    # Two copies of every organization; the second under renamed slugs.
    got = [s for (s,) in query(dsn, "SELECT slug FROM sentry_organization ORDER BY slug")]
    assert len(got) == 2 * len(slugs) == len(set(got))
    for slug in slugs:
        assert slug in got
        assert sum(s.startswith(f"{slug}-") for s in got) >= 1, (slug, got)
    # Both imports did the same (but for which of them created an Email address first:
    # get-or-create), and their Inserted rows are distinct rows of the table (integrity:
    # no new pk claimed twice); only side-effect tables hold more.
    kinds = [
        query(
            dsn,
            "SELECT model, CASE WHEN model = 'sentry.email' THEN '' ELSE kind END, count(*) "
            "FROM relocate_pk_map WHERE import_uuid = %s GROUP BY 1, 2 ORDER BY 1, 2",
            (u,),
        )
        for u in uuids
    ]
    assert kinds[0] == kinds[1]
    for model, inserted in query(
        dsn,
        "SELECT model, count(DISTINCT new_pk) FROM relocate_pk_map WHERE kind = 'Inserted' "
        "GROUP BY model",
    ):
        table = registry[model].table
        in_table = scalar(dsn, f"SELECT count(*) FROM {table}")  # registry table name
        if table in SIDE_EFFECT_REFERENCES:
            assert in_table >= inserted, (model, in_table, inserted)
        else:
            assert in_table == inserted, (model, in_table, inserted)
    FIGURES["concurrent_runs_matched"] += 1


def test_a_slug_taken_by_a_concurrent_import_is_renamed_not_an_error(
    new_db: Callable[..., str], tmp_path: Path
) -> None:
    """An organization whose slug a concurrent import is inserting (not yet committed)
    gets another slug once that import commits, as it would had it committed before."""
    dsn = new_db()
    src = write_export(
        tmp_path / "org.json",
        [
            row(
                "sentry.organization",
                1,
                name="Acme",
                slug="acme",
                status=0,
                date_added=TS,
                default_role="member",
                is_test=False,
                flags="1",
            )
        ],
    )
    outcome: list[Any] = []
    with psycopg.connect(dsn) as other:
        other.execute("INSERT INTO sentry_organization (name, slug) VALUES ('Other', 'acme')")
        thread = threading.Thread(
            target=lambda: outcome.append(import_export(dsn, "organizations", src, "--silent"))
        )
        thread.start()
        wait_for_lock_wait(dsn)  # the import's insert waits for the other transaction
        other.commit()
        thread.join(timeout=120)
        assert not thread.is_alive()
    run = outcome[0]
    assert run.code == 0, run.err
    slugs = [s for (s,) in query(dsn, "SELECT slug FROM sentry_organization ORDER BY id")]
    assert slugs[0] == "acme" and slugs[1].startswith("acme-"), slugs
