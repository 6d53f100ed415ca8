"""``relocate plan``: a dry run that writes nothing to the target and predicts the import.

The plan runs the real import on a scratch copy of the target, so these tests check the
two promises that design makes: the target is unchanged (as a role that can only read it,
and by a canonical dump and every sequence compared before and after), and what the plan
says (per-model counts; which rows are renamed, merged, kept or overwritten, regenerated,
skipped or dropped; the findings) is what ``relocate import`` then does to the same target.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from relocate.db.plan import COUNTS, config_models
from relocate.db.scratch import import_tables, scratch_copy, split_dump
from relocate.db.target import Target
from relocate.schemas.registry import Registry

from .canonical import canonical_dump
from .helpers import import_export, query, run_cli, user, write_export

SNAPSHOT = "release-snapshots/test_at_24_7_0.json"


def plan(dsn: str, scope: str, src: Path | str, plan_file: Path, *flags: str):
    return run_cli("plan", scope, str(src), "--dsn", dsn, "--plan-file", str(plan_file), *flags)


def sequences(dsn: str) -> dict[str, tuple[int, bool]]:
    """Every sequence of the target with its state."""
    with psycopg.connect(dsn) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c WHERE c.relkind = 'S' "
                "AND c.relnamespace = current_schema()::regnamespace"
            )
        ]
        return {
            n: tuple(conn.execute(f'SELECT last_value, is_called FROM "{n}"').fetchone())
            for n in names
        }


def target_state(dsn: str) -> tuple[Any, Any]:
    return canonical_dump(dsn), sequences(dsn)


@pytest.fixture
def reader(db_dsn: str) -> Iterator[str]:
    """The DSN of ``db_dsn`` as a role that may only read (pg_read_all_data)."""
    role = f"plan_reader_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT pg_read_all_data TO {role}")
    try:
        yield psycopg.conninfo.make_conninfo(db_dsn, user=role)
    finally:
        with psycopg.connect(db_dsn, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def generate(path: Path, rows: int, scope: str = "organizations", seed: int = 3) -> Path:
    run = run_cli(
        "generate", str(path), "--rows", str(rows), "--seed", str(seed), "--scope", scope, "--quiet"
    )
    assert run.code == 0, run.err
    return path


# ---------------------------------------------------------------------------------------
# The plan's outcome, and the import's, as comparable sets


def planned(plan_file: Path) -> dict[str, Any]:
    data = json.loads(plan_file.read_text())
    return {
        "counts": {
            m: {c: n for c, n in v.items() if c != "read" and n}
            for m, v in data["models"].items()
            if any(n for c, n in v.items() if c != "read")
        },
        "renamed": {(e["model"], e["source_pk"], e["field"], e["from"]) for e in data["renamed"]},
        "regenerated": {(e["model"], e["source_pk"], e["field"]) for e in data["regenerated"]},
        "merged": {(e["source_pk"], e["into_user_id"]) for e in data["merged"]},
        "configs": {(e["model"], e["source_pk"], e["outcome"]) for e in data["configs"]},
        "dropped": {
            (e["model"], e["source_pk"], e["action"], e["reason"]) for e in data["dropped"]
        },
        "findings": data["findings"],
    }


def imported(dsn: str, import_uuid: str) -> dict[str, Any]:
    """What import ``import_uuid`` did, read from the target's ledger and report."""
    names = {"Inserted": "inserted", "Existing": "existing", "Overwrite": "overwritten"}
    counts: dict[str, dict[str, int]] = {}
    for model, kind, n in query(
        dsn,
        "SELECT model, kind, count(*) FROM relocate_pk_map WHERE import_uuid = %s GROUP BY 1, 2",
        (import_uuid,),
    ):
        counts.setdefault(model, {})[names[kind]] = n
    # The report is kept per run: the last run's is what its summary counts.
    last_run = (
        "run_id = (SELECT run_id FROM relocate_report WHERE import_uuid = %(u)s "
        "ORDER BY created_at DESC LIMIT 1)"
    )
    for model, action, n in query(
        dsn,
        "SELECT model, action, count(*) FROM relocate_report WHERE import_uuid = %(u)s "
        f"AND action IN ('skipped', 'dropped') AND {last_run} GROUP BY 1, 2",
        {"u": import_uuid},
    ):
        counts.setdefault(model, {})[action] = n
    changes = query(
        dsn,
        "SELECT m.model, m.old_pk, c.key, c.value FROM relocate_pk_map m, "
        "jsonb_each(m.changes) c WHERE m.import_uuid = %s AND m.changes IS NOT NULL",
        (import_uuid,),
    )
    config = list(config_models())
    return {
        "counts": counts,
        "renamed": {
            (m, pk, f, c.get("from")) for m, pk, f, c in changes if c["action"] == "renamed"
        },
        "regenerated": {(m, pk, f) for m, pk, f, c in changes if c["action"] == "regenerated"},
        "merged": set(
            query(
                dsn,
                "SELECT old_pk, new_pk FROM relocate_pk_map WHERE import_uuid = %s "
                "AND model = 'sentry.user' AND kind = 'Existing'",
                (import_uuid,),
            )
        ),
        "configs": {
            (m, pk, "overwritten" if k == "Overwrite" else "kept")
            for m, pk, k in query(
                dsn,
                "SELECT model, old_pk, kind FROM relocate_pk_map WHERE import_uuid = %s "
                "AND model = ANY(%s) AND kind <> 'Inserted'",
                (import_uuid, config),
            )
        },
        "dropped": set(
            query(
                dsn,
                "SELECT model, source_pk, action, reason FROM relocate_report "
                f"WHERE import_uuid = %(u)s AND action IN ('skipped', 'dropped') AND {last_run}",
                {"u": import_uuid},
            )
        ),
    }


def assert_plan_is_the_import(
    dsn: str, scope: str, src: Path, tmp_path: Path, *flags: str, import_uuid: str | None = None
) -> dict[str, Any]:
    """Plans, checks the target is unchanged, imports; the plan must equal the import."""
    import_uuid = import_uuid or uuid.uuid4().hex
    plan_file = tmp_path / f"plan-{import_uuid}.json"
    before = target_state(dsn)
    run = plan(dsn, scope, src, plan_file, "--import-uuid", import_uuid, *flags)
    assert run.code == 0, run.err
    assert target_state(dsn) == before
    predicted = planned(plan_file)
    done = import_export(dsn, scope, src, "--import-uuid", import_uuid, *flags)
    assert done.code == 0, done.err
    actual = imported(dsn, import_uuid)
    for key in ("counts", "renamed", "regenerated", "merged", "configs", "dropped"):
        assert predicted[key] == actual[key], key
    return predicted


# ---------------------------------------------------------------------------------------
# Quick: the target is unchanged, as a role that can only read it; the plan file


def test_plan_writes_nothing_and_lists_collisions_as_a_reader(db_dsn, reader, tmp_path):
    src = generate(tmp_path / "export.json", 800)
    assert import_export(db_dsn, "organizations", src).code == 0  # every name now taken
    before = target_state(db_dsn)
    plan_file = tmp_path / "plan.json"

    run = plan(reader, "organizations", src, plan_file)

    assert run.code == 0, run.err
    assert target_state(db_dsn) == before
    data = json.loads(plan_file.read_text())
    assert list(data) == [
        "scope", "import_uuid", "findings", "models", "total",
        "renamed", "merged", "configs", "regenerated", "dropped",
    ]  # fmt: skip
    assert data["scope"] == "organizations" and data["findings"] == []
    exported = json.loads(src.read_text())
    users = {r["pk"]: r["fields"]["username"] for r in exported if r["model"] == "sentry.user"}
    orgs = {r["pk"]: r["fields"]["slug"] for r in exported if r["model"] == "sentry.organization"}
    # Every user and organization collides with the one the first import wrote.
    renamed = {(e["model"], e["source_pk"]): e for e in data["renamed"]}
    assert {pk for m, pk in renamed if m == "sentry.user"} == set(users)
    assert {pk for m, pk in renamed if m == "sentry.organization"} == set(orgs)
    for pk, name in users.items():
        entry = renamed[("sentry.user", pk)]
        assert entry["from"] == name and entry["to"].startswith(name + "-")
        assert entry["collides_with"]["username"] == name
    assert data["models"]["sentry.user"]["inserted"] == len(users)
    assert data["total"]["inserted"] == sum(m["inserted"] for m in data["models"].values())
    assert data["models"]["sentry.email"]["existing"] == data["total"]["existing"] > 0
    assert data["merged"] == [] and data["configs"] == []
    keys = [r for r in exported if r["model"] == "sentry.projectkey"]
    regenerated = {(e["model"], e["source_pk"], e["field"]) for e in data["regenerated"]}
    for key in keys:
        assert ("sentry.projectkey", key["pk"], "public_key") in regenerated
    # No secret value reaches the plan: neither the exported keys nor the new ones.
    text = plan_file.read_text() + run.err
    for key in keys:
        assert key["fields"]["public_key"] not in text
        assert key["fields"]["secret_key"] not in text
    new_keys = [r[0] for r in query(db_dsn, "SELECT public_key FROM sentry_projectkey")]
    assert all(k not in text for k in new_keys)
    # The terminal: the counts, then the sections, capped with a pointer to the file.
    assert "Renamed:" in run.err and "Keys, tokens and guids regenerated:" in run.err
    assert "more; see --plan-file" in run.err
    assert "nothing is written to the target" in run.err


def test_plan_findings_exit_1_and_equal_the_imports(db_dsn, tmp_path):
    src = write_export(tmp_path / "bad.json", [user(1, "   "), user(2, "fine")])
    before = target_state(db_dsn)
    findings = tmp_path / "findings.json"

    run = plan(db_dsn, "users", src, tmp_path / "plan.json", "--findings-file", str(findings))

    assert run.code == 1
    assert target_state(db_dsn) == before
    data = json.loads((tmp_path / "plan.json").read_text())
    done = import_export(db_dsn, "users", src)
    assert done.code == 1
    assert data["findings"] == json.loads(findings.read_text())
    assert data["findings"][0]["kind"] == "ValidationError"
    assert "This field may not be blank" in run.err
    assert "The import would fail with 1 finding(s)" in run.err
    assert [f["on"] for f in data["findings"]] == [{"model": "sentry.user", "ordinal": 1}]
    assert query(db_dsn, "SELECT count(*) FROM auth_user") == [(0,)]


@pytest.mark.parametrize("runner", ["--runner=DataflowRunner", "--detach"])
def test_plan_runs_locally_only(db_dsn, tmp_path, runner):
    src = write_export(tmp_path / "e.json", [user(1, "a")])
    run = run_cli("plan", "users", str(src), "--dsn", db_dsn, runner)
    assert run.code == 2
    assert "takes no --runner=DataflowRunner and no --detach" in run.err


def test_split_dump_keeps_sql_and_drops_psql_meta_commands():
    text = (
        "\\restrict abc\n--\n-- PostgreSQL database dump\n--\nSET x = 1;\n\n"
        "--\n-- Name: t; Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE t (id int);\n"
        "--\n-- Name: t t_fk; Type: FK CONSTRAINT; Schema: public; Owner: -\n--\n\n"
        "ALTER TABLE t ADD CONSTRAINT t_fk FOREIGN KEY (id) REFERENCES u(id);\n\\unrestrict abc\n"
    )
    parts = [(kind, name, sql.strip().splitlines()[-1]) for kind, name, sql in split_dump(text)]
    assert parts == [
        ("SET", "", "SET x = 1;"),
        ("TABLE", "t", "CREATE TABLE t (id int);"),
        (
            "FK CONSTRAINT",
            "t t_fk",
            "ALTER TABLE t ADD CONSTRAINT t_fk FOREIGN KEY (id) REFERENCES u(id);",
        ),
    ]


def test_import_tables_cover_models_side_effects_and_replicas():
    tables = import_tables(Registry.load())
    for table in (
        "auth_user",
        "sentry_organization",
        "sentry_lostpasswordhash",
        "sentry_organizationslugreservation",
        "hybridcloud_apitokenreplica",
        "sentry_useremail",
    ):
        assert table in tables
    assert not [t for t in tables if t.startswith("relocate_")]
    assert COUNTS == ("read", "inserted", "existing", "overwritten", "skipped", "dropped")


# ---------------------------------------------------------------------------------------
# Exactness: the plan is what the import then does, on a collision-rich target


@pytest.fixture(scope="module")
def snapshot_source(database_from, fixtures_dir) -> Iterator[str]:
    """Sentry's 24.7.0 snapshot imported once for the module (the cases clone it)."""
    with database_from(prefix="plan_src") as dsn:
        assert import_export(dsn, "global", fixtures_dir / SNAPSHOT).code == 0
        yield dsn


@pytest.fixture
def snapshot_target(database_from, snapshot_source) -> Iterator[str]:
    """A target already holding Sentry's 24.7.0 snapshot: every name, key, token and
    config row of the snapshot collides."""
    with database_from(snapshot_source) as dsn:
        yield dsn


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scope", "flags"),
    [
        ("users", ()),
        ("users", ("--merge-users",)),
        ("organizations", ()),
        ("organizations", ("--merge-users",)),
        ("config", ()),
        ("config", ("--overwrite-configs", "--merge-users")),
        ("global", ()),
    ],
)
def test_plan_is_the_import_on_sentry_snapshot(
    snapshot_target, fixtures_dir, tmp_path, scope, flags
):
    predicted = assert_plan_is_the_import(
        snapshot_target, scope, fixtures_dir / SNAPSHOT, tmp_path, *flags
    )
    if scope in ("users", "organizations") and "--merge-users" not in flags:
        assert {m for m, *_ in predicted["renamed"]} >= {"sentry.user"}
    if "--merge-users" in flags:
        assert predicted["merged"]
    if scope == "config":
        outcome = "overwritten" if "--overwrite-configs" in flags else "kept"
        assert predicted["configs"] and {o for *_, o in predicted["configs"]} == {outcome}
    if scope == "organizations":
        assert {m for m, *_ in predicted["regenerated"]} >= {"sentry.projectkey", "sentry.monitor"}


@pytest.mark.slow
def test_plan_is_the_import_on_duplicate_names(db_dsn, fixtures_dir, tmp_path):
    src = fixtures_dir / "duplicate-username-and-organization-slug.json"
    assert import_export(db_dsn, "organizations", src).code == 0
    predicted = assert_plan_is_the_import(db_dsn, "organizations", src, tmp_path)
    assert {m for m, *_ in predicted["renamed"]} == {"sentry.user", "sentry.organization"}


@pytest.mark.slow
@pytest.mark.parametrize("flags", [(), ("--merge-users",)])
def test_plan_is_the_import_on_a_generated_export(db_dsn, tmp_path, flags):
    src = generate(tmp_path / "export.json", 3000, scope="global", seed=11)
    assert import_export(db_dsn, "global", src).code == 0
    predicted = assert_plan_is_the_import(db_dsn, "organizations", src, tmp_path, *flags)
    assert predicted["renamed"] or predicted["merged"]


def test_scratch_is_deleted_on_ctrl_c(db_dsn):
    with pytest.raises(KeyboardInterrupt), scratch_copy(Target(db_dsn), Registry.load()) as s:
        directory, dsn = s.directory, s.dsn
        assert query(dsn, "SELECT count(*) FROM auth_user") == [(0,)]
        raise KeyboardInterrupt
    assert not Path(directory).exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2).close()


def test_older_ledgers_get_the_changes_column(empty_db_dsn):
    from relocate.db.ledger import LEDGER_DDL

    with psycopg.connect(empty_db_dsn) as conn:
        conn.execute(
            "CREATE TABLE relocate_pk_map (import_uuid uuid NOT NULL, model text NOT NULL, "
            "old_pk bigint NOT NULL, new_pk bigint NOT NULL, kind text NOT NULL, slug text, "
            "ordinal bigint NOT NULL, stage integer NOT NULL, previous jsonb, "
            "created_at timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (import_uuid, model, old_pk))"
        )
        conn.execute(
            "INSERT INTO relocate_pk_map (import_uuid, model, old_pk, new_pk, kind, ordinal, "
            "stage) VALUES (%s, 'sentry.user', 1, 1, 'Inserted', 1, 1)",
            (uuid.uuid4().hex,),
        )
        for statement in LEDGER_DDL:
            conn.execute(statement)
        rows = conn.execute("SELECT model, changes FROM relocate_pk_map").fetchall()
    assert rows == [("sentry.user", None)]


@pytest.mark.slow
def test_plan_of_a_rerun_sees_what_the_import_wrote(db_dsn, tmp_path, fixtures_dir):
    """A plan under the UUID of an import already run copies that import's ledger: its
    rows are found written, not renamed against themselves, as the rerun finds them."""
    src = fixtures_dir / SNAPSHOT
    import_uuid = uuid.uuid4().hex
    assert import_export(db_dsn, "organizations", src, "--import-uuid", import_uuid).code == 0
    first = imported(db_dsn, import_uuid)

    predicted = assert_plan_is_the_import(
        db_dsn, "organizations", src, tmp_path, import_uuid=import_uuid
    )

    assert predicted["counts"] == first["counts"]
    assert predicted["renamed"] == first["renamed"]


def test_plan_escapes_export_text_on_the_terminal(db_dsn, tmp_path):
    name = "mallory\x1b]0;owned\x07"
    src = write_export(tmp_path / "e.json", [user(1, name)])
    assert import_export(db_dsn, "users", src).code == 0

    run = plan(db_dsn, "users", src, tmp_path / "plan.json")

    assert run.code == 0, run.err
    assert "\x1b" not in run.err and "\x07" not in run.err
    assert "sentry.user pk 1: username 'mallory" in run.err
    renamed = json.loads((tmp_path / "plan.json").read_text())["renamed"]
    assert [(e["from"], e["collides_with"]["username"]) for e in renamed] == [(name, name)]
