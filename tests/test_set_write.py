"""The set-based write of models without rules (``relocate.db.set_write``): the same
database as the per-row path, and the per-row path for every batch it cannot take whole."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from relocate.db.catalog import read_catalog
from relocate.db.ddl import field_map
from relocate.db.sink import BatchWriter
from relocate.generate.engine import generate
from relocate.logic.convert import Converted, build_layouts
from relocate.logic.rules import build_handlers
from relocate.logic.settings import ImportSettings
from relocate.schemas.registry import Registry
from tests.helpers import import_export, member, query, scalar, user, write_export
from tests.test_encrypted_import import canonical_dump
from tests.test_hostile_constraints import org, project, team

IMPORT = "5e75e75e75e75e75e75e75e75e75e75e"
IN_PROCESS = "--direct_running_mode=in_memory"


def _import_both_ways(monkeypatch, db_dsn: str, reference_dsn: str, scope: str, src: Path):
    done = import_export(db_dsn, scope, src, IN_PROCESS)
    assert done.code == 0, done.err
    with monkeypatch.context() as patch:
        patch.setattr(BatchWriter, "set_based", False)
        reference = import_export(reference_dsn, scope, src, IN_PROCESS)
    assert reference.code == 0, reference.err


@pytest.mark.slow
def test_the_24_7_0_snapshot_is_the_same_database_as_row_by_row(
    monkeypatch, db_dsn, another_db_dsn, fixtures_dir
):
    src = fixtures_dir / "release-snapshots" / "test_at_24_7_0.json"
    _import_both_ways(monkeypatch, db_dsn, another_db_dsn, "global", src)
    # Row for row, ids included: the same ids drawn in the same order.
    assert canonical_dump(db_dsn, "global") == canonical_dump(another_db_dsn, "global")


@pytest.mark.slow
def test_a_generated_tenant_is_the_same_database_as_row_by_row(
    monkeypatch, db_dsn, another_db_dsn, tmp_path
):
    src = tmp_path / "tenant.json"
    with open(src, "wb") as out:
        generate(out, 4000, seed=3, scope="organizations")
    _import_both_ways(monkeypatch, db_dsn, another_db_dsn, "organizations", src)
    dump = canonical_dump(db_dsn, "organizations")
    assert dump == canonical_dump(another_db_dsn, "organizations")
    # The tenant has rows of models without rules, with their keys rewritten.
    assert len(dump["sentry_projectteam"][1]) > 10
    assert scalar(
        db_dsn,
        "SELECT count(*) FROM sentry_projectteam pt JOIN sentry_project p ON p.id = pt.project_id "
        "JOIN sentry_team t ON t.id = pt.team_id",
    ) == scalar(db_dsn, "SELECT count(*) FROM sentry_projectteam")


# --- one batch at a time, on a target holding an imported organization -----------------


@pytest.fixture
def writer(db_dsn, tmp_path):
    parents = [
        org(1, "acme"),
        team(10, 1, "red"),
        team(11, 1, "blue"),
        project(20, 1, "web"),
        project(21, 1, "api"),
        user(30, "ann"),
        member(40, 1, 30),
    ]
    done = import_export(
        db_dsn,
        "organizations",
        write_export(tmp_path / "parents.json", parents),
        "--import-uuid",
        IMPORT,
    )
    assert done.code == 0, done.err
    registry = Registry.load()
    with psycopg.connect(db_dsn) as conn:
        layouts = build_layouts(registry, field_map(), read_catalog(conn))
        conn.commit()
        settings = ImportSettings(
            scope="organizations", import_uuid=IMPORT, run_id=uuid.uuid4().hex, dsn=db_dsn
        )
        yield BatchWriter(conn, settings, registry, layouts, build_handlers())


def _projectteams(*rows: tuple[int, int, int, object]) -> list[Converted]:
    """(ordinal, pk, project pk, team pk) -> converted sentry.projectteam rows."""
    return [
        Converted("sentry.projectteam", o, pk, {"project_id": p, "team_id": t})
        for o, pk, p, t in rows
    ]


def _new(dsn: str, model: str, old_pk: int) -> int:
    return scalar(
        dsn,
        "SELECT new_pk FROM relocate_pk_map WHERE import_uuid = %s AND model = %s AND old_pk = %s",
        (IMPORT, model, old_pk),
    )


def _next_id(dsn: str, table: str) -> int:
    """The id the table's sequence gives next (without drawing it)."""
    last, called = query(dsn, f"SELECT last_value, is_called FROM {table}_id_seq")[0]
    return last + 1 if called else last


def test_a_whole_batch_is_written_with_new_pks_in_file_order(writer, db_dsn):
    first = _next_id(db_dsn, "sentry_projectteam")
    result = writer.write(
        "sentry.projectteam", _projectteams((1, 73, 20, 10), (2, 71, 20, 11), (3, 72, 21, 10))
    )
    writer.conn.commit()
    assert (result.inserted, result.dropped, result.skipped, result.errors) == (3, 0, 0, 0)
    web, api = _new(db_dsn, "sentry.project", 20), _new(db_dsn, "sentry.project", 21)
    red, blue = _new(db_dsn, "sentry.team", 10), _new(db_dsn, "sentry.team", 11)
    assert query(db_dsn, "SELECT id, project_id, team_id FROM sentry_projectteam ORDER BY id") == [
        (first, web, red),
        (first + 1, web, blue),
        (first + 2, api, red),
    ]
    assert query(
        db_dsn,
        "SELECT old_pk, new_pk, kind, ordinal, stage FROM relocate_pk_map "
        "WHERE model = 'sentry.projectteam' ORDER BY ordinal",
    ) == [
        (73, first, "Inserted", 1, 4),
        (71, first + 1, "Inserted", 2, 4),
        (72, first + 2, "Inserted", 3, 4),
    ]
    assert query(
        db_dsn,
        "SELECT kind, rows FROM relocate_progress WHERE model = 'sentry.projectteam'",
    ) == [("written", 3)]


def test_a_row_to_drop_sends_the_batch_row_by_row_without_spending_ids(writer, db_dsn):
    first = _next_id(db_dsn, "sentry_projectteam")
    rows = _projectteams((1, 1, 20, 10), (2, 2, 20, 99), (3, 3, 21, True), (4, 4, 21, 11))
    result = writer.write("sentry.projectteam", rows)
    writer.conn.commit()
    assert (result.inserted, result.dropped) == (2, 2)
    # The ids follow on from the sequence: the set-based attempt drew none.
    assert [r[0] for r in query(db_dsn, "SELECT id FROM sentry_projectteam ORDER BY id")] == [
        first,
        first + 1,
    ]
    assert query(
        db_dsn,
        "SELECT ordinal, action, reason FROM relocate_report "
        "WHERE model = 'sentry.projectteam' ORDER BY ordinal",
    ) == [
        (2, "dropped", "`team` points at sentry.team pk 99, which was not imported"),
        (3, "dropped", "`team` points at sentry.team pk True, which was not imported"),
    ]


def test_a_repeated_pk_and_a_resumed_batch_take_the_per_row_path(writer, db_dsn):
    rows = _projectteams((1, 5, 20, 10), (2, 5, 21, 11))
    result = writer.write("sentry.projectteam", rows)
    assert (result.inserted, result.skipped) == (1, 1)
    again = writer.write("sentry.projectteam", rows)
    writer.conn.commit()
    # The row written before is counted as such (with its kind), not written again.
    assert (again.already, again.skipped) == (1, 1)
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_projectteam") == 1
    assert query(
        db_dsn,
        "SELECT DISTINCT ordinal, reason FROM relocate_report WHERE model = 'sentry.projectteam'",
    ) == [(2, "duplicate pk 5: row 1 of sentry.projectteam has the same pk")]


def test_a_database_error_is_a_finding_that_names_the_row(writer, db_dsn):
    # The second row repeats the first's (project, team): a unique violation.
    result = writer.write("sentry.projectteam", _projectteams((1, 1, 20, 10), (2, 2, 20, 10)))
    writer.conn.commit()
    assert result.errors == 1
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_projectteam") == 0
    assert (
        scalar(db_dsn, "SELECT count(*) FROM relocate_pk_map WHERE model = 'sentry.projectteam'")
        == 0
    )
    ((kind, ordinal, pk, reason),) = query(
        db_dsn,
        "SELECT finding_kind, ordinal, source_pk, reason FROM relocate_report "
        "WHERE action = 'error'",
    )
    assert (kind, ordinal, pk) == ("IntegrityError", 2, "2")
    assert reason.startswith("UniqueViolation: duplicate key value")


def test_replicated_rows_get_their_replicas(writer, db_dsn):
    rows = [
        Converted(
            "sentry.organizationmemberteam",
            1,
            50,
            {"organizationmember_id": 40, "team_id": 10, "is_active": True, "role": None},
        )
    ]
    result = writer.write("sentry.organizationmemberteam", rows)
    writer.conn.commit()
    assert result.inserted == 1
    new = _new(db_dsn, "sentry.organizationmemberteam", 50)
    assert query(
        db_dsn,
        "SELECT organizationmemberteam_id, team_id, organizationmember_id "
        "FROM sentry_organizationmember_teamsreplica",
    ) == [(new, _new(db_dsn, "sentry.team", 10), _new(db_dsn, "sentry.organizationmember", 40))]


# --- models whose rules a batch can leave with nothing to do ---------------------------


def _user_options(*rows: tuple[int, int, str]) -> list[Converted]:
    """(ordinal, pk, key) -> global sentry.useroption rows of user 30."""
    return [
        Converted(
            "sentry.useroption",
            o,
            pk,
            {"user_id": 30, "project_id": None, "organization_id": None, "key": k, "value": "1"},
        )
        for o, pk, k in rows
    ]


def test_a_global_user_option_the_user_holds_is_dropped_row_by_row(writer, db_dsn):
    first = writer.write("sentry.useroption", _user_options((1, 1, "a"), (2, 2, "b")))
    again = writer.write("sentry.useroption", _user_options((3, 3, "a"), (4, 4, "c"), (5, 5, "c")))
    writer.conn.commit()
    assert (first.inserted, first.dropped) == (2, 0)
    assert (again.inserted, again.dropped) == (1, 2)
    ann = _new(db_dsn, "sentry.user", 30)
    assert query(
        db_dsn, "SELECT key FROM sentry_useroption WHERE user_id = %s ORDER BY key", (ann,)
    ) == [("a",), ("b",), ("c",)]
    assert [
        r[0]
        for r in query(
            db_dsn,
            "SELECT ordinal FROM relocate_report WHERE model = 'sentry.useroption' "
            "AND action = 'dropped' AND reason LIKE 'the user has a global option%%' ORDER BY 1",
        )
    ] == [3, 5]


def test_options_and_permissions_of_a_merged_user_are_dropped_row_by_row(db_dsn, tmp_path):
    first = import_export(db_dsn, "users", write_export(tmp_path / "ann.json", [user(1, "ann")]))
    assert first.code == 0, first.err
    merged = import_export(
        db_dsn,
        "users",
        write_export(tmp_path / "again.json", [user(30, "ann")]),
        "--import-uuid",
        IMPORT,
        "--merge-users",
    )
    assert merged.code == 0, merged.err
    assert query(db_dsn, "SELECT kind FROM relocate_pk_map WHERE import_uuid = %s", (IMPORT,)) == [
        ("Existing",)
    ]
    registry = Registry.load()
    with psycopg.connect(db_dsn) as conn:
        layouts = build_layouts(registry, field_map(), read_catalog(conn))
        conn.commit()
        settings = ImportSettings(
            scope="users",
            import_uuid=IMPORT,
            run_id=uuid.uuid4().hex,
            dsn=db_dsn,
            merge_users=True,
        )
        writer = BatchWriter(conn, settings, registry, layouts, build_handlers())
        options = writer.write("sentry.useroption", _user_options((1, 1, "a")))
        permissions = writer.write(
            "sentry.userpermission",
            [Converted("sentry.userpermission", 1, 1, {"user_id": 30, "permission": "x"})],
        )
        conn.commit()
    assert (options.inserted, options.dropped) == (0, 1)
    assert (permissions.inserted, permissions.dropped) == (0, 1)
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_useroption") == 0
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_userpermission") == 0


# --- rows that land on a row the table holds -------------------------------------------


def _project_options(*rows: tuple[int, int, int, str, str]) -> list[Converted]:
    """(ordinal, pk, project pk, key, value) -> converted sentry.projectoption rows."""
    return [
        Converted("sentry.projectoption", o, pk, {"project_id": p, "key": k, "value": v})
        for o, pk, p, k, v in rows
    ]


def _taken_whole(monkeypatch) -> list[bool]:
    """What each set-based attempt returned (True: it wrote the batch)."""
    import relocate.db.sink as sink

    attempts: list[bool] = []
    original = sink.write_set_based

    def spy(*args, **kwargs):
        landed = original(*args, **kwargs)
        attempts.append(landed is not None)
        return landed

    monkeypatch.setattr(sink, "write_set_based", spy)
    return attempts


def _options_of(dsn: str, project: int) -> dict[str, tuple[int, str]]:
    return {
        key: (row_id, value)
        for row_id, key, value in query(
            dsn,
            "SELECT id, key, value FROM sentry_projectoptions WHERE project_id = %s",
            (project,),
        )
    }


def test_project_options_land_on_the_projects_own_options_set_based(writer, db_dsn, monkeypatch):
    attempts = _taken_whole(monkeypatch)
    web = _new(db_dsn, "sentry.project", 20)
    before = _options_of(db_dsn, web)
    epoch_id = before["sentry:option-epoch"][0]
    first = _next_id(db_dsn, "sentry_projectoptions")
    result = writer.write(
        "sentry.projectoption",
        _project_options(
            (1, 7, 20, "sentry:origins", '["*"]'),
            (2, 8, 20, "sentry:option-epoch", "11"),
            (3, 9, 20, "sentry:token", '"abc"'),
        ),
    )
    writer.conn.commit()
    assert attempts == [True]
    assert result.inserted == 3
    after = _options_of(db_dsn, web)
    # An id is drawn for every row in file order, as the per-row claim does; the row that
    # lands keeps the found row's id and takes the imported value.
    assert after["sentry:origins"] == (first, '["*"]')
    assert after["sentry:option-epoch"] == (epoch_id, "11")
    assert after["sentry:token"] == (first + 2, '"abc"')
    assert len(after) == len(before) + 2
    assert query(
        db_dsn,
        "SELECT old_pk, new_pk, kind FROM relocate_pk_map "
        "WHERE model = 'sentry.projectoption' ORDER BY ordinal",
    ) == [(7, first, "Inserted"), (8, epoch_id, "Inserted"), (9, first + 2, "Inserted")]
    assert _next_id(db_dsn, "sentry_projectoptions") == first + 3


def test_project_options_repeating_a_key_go_row_by_row_the_later_value_kept(
    writer, db_dsn, monkeypatch
):
    attempts = _taken_whole(monkeypatch)
    web = _new(db_dsn, "sentry.project", 20)
    first = _next_id(db_dsn, "sentry_projectoptions")
    result = writer.write(
        "sentry.projectoption",
        _project_options(
            (1, 7, 20, "sentry:origins", '["a"]'), (2, 8, 20, "sentry:origins", '["b"]')
        ),
    )
    writer.conn.commit()
    assert attempts == [False]
    assert result.inserted == 2
    assert _options_of(db_dsn, web)["sentry:origins"] == (first, '["b"]')
    # The per-row path drew the ids: the attempt before it drew none.
    assert _next_id(db_dsn, "sentry_projectoptions") == first + 2


def _user_emails(*rows: tuple[int, int, str]) -> list[Converted]:
    """(ordinal, pk, address) -> converted sentry.useremail rows of user 30 (ann)."""
    return [
        Converted(
            "sentry.useremail",
            o,
            pk,
            {
                "user_id": 30,
                "email": e,
                "validation_hash": "mCnWesSVvYQcq7qXQ36AZHwosAd6cghE",
                "date_hash_added": "2023-06-22T22:59:55.531Z",
                "is_verified": True,
            },
        )
        for o, pk, e in rows
    ]


def test_user_emails_land_on_the_primary_address_and_create_their_emails_set_based(
    writer, db_dsn, monkeypatch
):
    attempts = _taken_whole(monkeypatch)
    ann = _new(db_dsn, "sentry.user", 30)
    ((primary,),) = query(db_dsn, "SELECT id FROM sentry_useremail WHERE user_id = %s", (ann,))
    first = _next_id(db_dsn, "sentry_useremail")
    result = writer.write(
        "sentry.useremail",
        _user_emails((1, 5, "ann+work@example.com"), (2, 6, "ann@example.com")),
    )
    writer.conn.commit()
    assert attempts == [True]
    assert result.inserted == 2
    rows = query(
        db_dsn,
        "SELECT id, email, is_verified, validation_hash FROM sentry_useremail "
        "WHERE user_id = %s ORDER BY id",
        (ann,),
    )
    # The imported primary address lands on the one the user was created with; outside
    # Global every address is unverified, with a new hash to confirm it.
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (primary, "ann@example.com", False),
        (first, "ann+work@example.com", False),
    ]
    assert all(len(r[3]) == 32 and r[3] != "mCnWesSVvYQcq7qXQ36AZHwosAd6cghE" for r in rows)
    assert query(
        db_dsn,
        "SELECT old_pk, new_pk FROM relocate_pk_map WHERE model = 'sentry.useremail' "
        "ORDER BY ordinal",
    ) == [(5, first), (6, primary)]
    # The new address's Email row, recorded for rollback.
    assert query(
        db_dsn,
        "SELECT e.email FROM sentry_email e JOIN relocate_side_effect s "
        "ON s.row_id = e.id AND s.table_name = 'sentry_email' WHERE s.import_uuid = %s "
        "ORDER BY e.id",
        (IMPORT,),
    )[-1] == ("ann+work@example.com",)


def test_emails_land_on_the_address_the_table_holds_case_insensitively_set_based(
    writer, db_dsn, monkeypatch
):
    attempts = _taken_whole(monkeypatch)
    ((ann_email,),) = query(db_dsn, "SELECT id FROM sentry_email WHERE email = 'ann@example.com'")
    first = _next_id(db_dsn, "sentry_email")
    rows = [
        Converted("sentry.email", o, pk, {"email": e, "date_added": "2023-07-26T19:19:37.201Z"})
        for o, pk, e in ((1, 9, "new@example.com"), (2, 8, "Ann@Example.com"))
    ]
    result = writer.write("sentry.email", rows)
    writer.conn.commit()
    assert attempts == [True]
    assert (result.inserted, result.existing) == (1, 1)
    assert query(
        db_dsn,
        "SELECT old_pk, new_pk, kind FROM relocate_pk_map WHERE model = 'sentry.email' "
        "ORDER BY ordinal",
    ) == [(9, first, "Inserted"), (8, ann_email, "Existing")]
    # The address found takes the imported spelling and date.
    assert query(
        db_dsn,
        "SELECT id, email, date_added::text FROM sentry_email WHERE id IN (%s, %s) ORDER BY id",
        (ann_email, first),
    ) == [
        (ann_email, "Ann@Example.com", "2023-07-26 19:19:37.201+00"),
        (first, "new@example.com", "2023-07-26 19:19:37.201+00"),
    ]
