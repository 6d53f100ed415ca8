"""Queries over the pk-map ledger that must not read the whole import's rows."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import psycopg

from relocate.db.finish import import_keys, ledger_models, write_chunks
from relocate.db.handler import WriteContext, index_lookup, insert_skipping_taken, update_rows
from relocate.logic.convert import ColumnLayout, TableLayout
from relocate.logic.settings import ImportSettings
from relocate.schemas.registry import Registry


def _fill(conn: psycopg.Connection, import_uuid: str, models: dict[str, int]) -> None:
    for model, rows in models.items():
        conn.execute(
            "INSERT INTO relocate_pk_map (import_uuid, model, old_pk, new_pk, kind, ordinal, "
            "stage) SELECT %s, %s, n, n, 'Inserted', n, 1 FROM generate_series(1, %s) AS n",
            (import_uuid, model, rows),
        )


def test_ledger_models_are_the_models_of_one_import(db_dsn):
    mine, other = uuid.uuid4().hex, uuid.uuid4().hex
    with psycopg.connect(db_dsn) as conn:
        conn.execute("ANALYZE relocate_pk_map")  # statistics of an empty ledger, as mid-import
        _fill(conn, mine, {"sentry.user": 2000, "sentry.email": 1, "sentry.team": 30})
        _fill(conn, other, {"sentry.project": 5, "sentry.user": 3})
        with conn.cursor() as cur:
            assert ledger_models(cur, mine) == {"sentry.user", "sentry.email", "sentry.team"}
            assert ledger_models(cur, other) == {"sentry.project", "sentry.user"}
            assert ledger_models(cur, uuid.uuid4().hex) == set()
            cur.execute(
                "INSERT INTO relocate_side_effect (import_uuid, table_name, row_id) "
                "SELECT %s, t, n FROM unnest(ARRAY['sentry_useremail', 'sentry_email']) AS t, "
                "generate_series(1, 500) AS n",
                (mine,),
            )
            keys = import_keys(cur, "relocate_side_effect", "table_name", mine)
            assert keys == {"sentry_useremail", "sentry_email"}
            assert import_keys(cur, "relocate_side_effect", "table_name", other) == set()


def test_an_index_lookup_finds_each_key_and_leaves_the_planner_as_it_was(db_dsn):
    mine = uuid.uuid4().hex
    with psycopg.connect(db_dsn) as conn:
        _fill(conn, mine, {"sentry.user": 1000})
        with conn.cursor() as cur:
            rows = index_lookup(
                cur,
                "SELECT r.old_pk, m.new_pk FROM unnest(%s::bigint[]) AS r(old_pk) "
                "CROSS JOIN LATERAL (SELECT m.new_pk FROM relocate_pk_map m "
                "WHERE m.import_uuid = %s AND m.model = 'sentry.user' AND m.old_pk = r.old_pk "
                "LIMIT 1) AS m",
                ([5, 999, 1001], mine),
            )
            assert sorted(rows) == [(5, 5), (999, 999)]
            settings = cur.execute(
                "SELECT current_setting('enable_seqscan'), current_setting('enable_bitmapscan')"
            ).fetchone()
            assert settings == ("on", "on")


def test_record_outcomes_updates_only_the_rows_given(db_dsn):
    from relocate.db.handler import Item
    from relocate.db.sink import record_outcomes

    mine, other = uuid.uuid4().hex, uuid.uuid4().hex
    with psycopg.connect(db_dsn) as conn:
        conn.execute("ANALYZE relocate_pk_map")
        _fill(conn, mine, {"sentry.email": 3000, "sentry.team": 10})
        _fill(conn, other, {"sentry.email": 10})
        existing = Item(7, 7, {}, new_pk=90001, kind="Existing")
        renamed = Item(8, 8, {}, new_pk=8, slug="team-8")
        renamed.changes["slug"] = {"action": "renamed", "reason": "taken", "from": "t\u00e9"}
        overwritten = Item(2999, 2999, {}, new_pk=5, kind="Overwrite", previous={"x": [1]})
        with conn.cursor() as cur:
            record_outcomes(cur, mine, "sentry.email", [existing, renamed, overwritten])
            rows = cur.execute(
                "SELECT old_pk, new_pk, kind, slug, previous, changes FROM relocate_pk_map "
                "WHERE import_uuid = %s AND model = 'sentry.email' AND old_pk IN (6, 7, 8, 2999) "
                "ORDER BY old_pk",
                (mine,),
            ).fetchall()
            assert rows == [
                (6, 6, "Inserted", None, None, None),
                (7, 90001, "Existing", None, None, None),
                (8, 8, "Inserted", "team-8", None, {"slug": renamed.changes["slug"]}),
                (2999, 5, "Overwrite", None, {"x": [1]}, None),
            ]
            untouched = cur.execute(
                "SELECT count(*) FROM relocate_pk_map WHERE (import_uuid = %s OR model = "
                "'sentry.team') AND kind = 'Inserted' AND new_pk = old_pk",
                (other,),
            ).fetchone()
            assert untouched == (20,)


def _update_context(cur: psycopg.Cursor) -> WriteContext:
    columns = (("name", "text"), ("at", "timestamp"), ("flag", "bool"), ("data", "json"))
    columns += (("tags", "array:text"), ("n", "int:integer"))
    layout = TableLayout(
        "test.updated",
        "relocate_test_updated",
        tuple(ColumnLayout(c, c, kind, True, False) for c, kind in columns),
        (),
        None,
    )
    registry = Registry.load()
    return WriteContext(
        cur,
        ImportSettings("organizations", uuid.uuid4().hex, "run", ""),
        registry,
        registry["sentry.email"],
        layout,
        {},
        {},
    )


def test_update_rows_writes_each_columns_type_and_the_last_values_of_a_row_named_twice(db_dsn):
    with psycopg.connect(db_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE relocate_test_updated (id bigint PRIMARY KEY, name text, "
            "at timestamptz, flag boolean, data jsonb, tags text[], n integer)"
        )
        cur.execute(
            "INSERT INTO relocate_test_updated (id, name, n) "
            "SELECT i, 'row ' || i, i FROM generate_series(1, 3000) AS i"
        )
        ctx = _update_context(cur)
        at = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
        update_rows(
            ctx,
            [
                (10, {"name": "ten", "at": at, "flag": True}),
                (11, {"name": 'quote "\\ é', "at": "2023-01-02T03:04:05+00:00", "flag": False}),
                (10, {"name": "ten again", "at": None, "flag": None}),
                (12, {"data": {"a": [1, 2.5, None, "x"]}, "tags": ["p", "q"], "n": -7}),
                (13, {"data": [1], "tags": [], "n": 0}),
                (14, {"name": "alone"}),
                (15, {}),
            ],
        )
        rows = cur.execute(
            "SELECT id, name, at, flag, data, tags, n FROM relocate_test_updated "
            "WHERE id BETWEEN 9 AND 16 ORDER BY id"
        ).fetchall()
        assert rows == [
            (9, "row 9", None, None, None, None, 9),
            (10, "ten again", None, None, None, None, 10),
            (
                11,
                'quote "\\ é',
                datetime(2023, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                False,
                None,
                None,
                11,
            ),
            (12, "row 12", None, None, {"a": [1, 2.5, None, "x"]}, ["p", "q"], -7),
            (13, "row 13", None, None, [1], [], 0),
            (14, "alone", None, None, None, None, 14),
            (15, "row 15", None, None, None, None, 15),
            (16, "row 16", None, None, None, None, 16),
        ]
        update_rows(ctx, [(20, {"at": at}), (21, {"at": at})])
        assert cur.execute(
            "SELECT array_agg(at ORDER BY id) FROM relocate_test_updated WHERE id IN (20, 21)"
        ).fetchone() == ([at, at],)
        settings = cur.execute("SELECT current_setting('enable_seqscan')").fetchone()
        assert settings == ("on",)


def test_insert_skipping_taken_inserts_as_on_conflict_do_nothing_would(db_dsn):
    mine = uuid.uuid4().hex
    claim = (
        "INSERT INTO relocate_pk_map (import_uuid, model, old_pk, new_pk, kind, ordinal, stage) "
        "SELECT %s, 'sentry.team', t.pk, t.pk + 100, 'Inserted', t.ordinal, 1 "
        "FROM unnest(%s::bigint[], %s::bigint[]) AS t(pk, ordinal) ORDER BY t.ordinal"
    )
    with psycopg.connect(db_dsn) as conn:
        _fill(conn, mine, {"sentry.team": 3})  # pks 1..3, ordinals 1..3
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT 1")  # the batch's transaction has begun
            # None taken: the plain statement inserts them all.
            fresh = insert_skipping_taken(
                cur, claim, "RETURNING old_pk, new_pk", (mine, [10, 11], [10, 11])
            )
            assert sorted(fresh) == [(10, 110), (11, 111)]
            # 2 and 11 are taken, 20 is named twice: the first in file order wins.
            again = insert_skipping_taken(
                cur,
                claim,
                "RETURNING old_pk, ordinal",
                (mine, [2, 12, 11, 20, 20], [2, 12, 11, 21, 20]),
            )
            assert sorted(again) == [(12, 12), (20, 20)]
            # Without RETURNING; the transaction is still usable after the fallback.
            assert insert_skipping_taken(cur, claim, "", (mine, [3, 13], [3, 13])) == []
        rows = conn.execute(
            "SELECT old_pk, ordinal FROM relocate_pk_map WHERE import_uuid = %s ORDER BY old_pk",
            (mine,),
        ).fetchall()
        assert rows == [(1, 1), (2, 2), (3, 3), (10, 10), (11, 11), (12, 12), (13, 13), (20, 20)]


def test_often_taken_rows_skip_the_plain_attempt(db_dsn):
    """Email rows of UserEmails are nearly always taken (the export's own Emails were
    written a stage earlier): the statement goes straight to ON CONFLICT DO NOTHING. The
    rows are the same as with the plain attempt first; what differs is the failed attempt,
    seen here by the ids it drew before it hit the taken row."""
    insert = "INSERT INTO emails (email) SELECT e FROM unnest(%s::text[]) AS t(e)"
    with psycopg.connect(db_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TEMPORARY TABLE emails (id bigserial PRIMARY KEY, email text UNIQUE)"
        )
        cur.execute("INSERT INTO emails (email) VALUES ('b@x'), ('y@x')")  # ids 1, 2
        batch = (["a@x", "b@x", "c@x"],)
        direct = insert_skipping_taken(cur, insert, "RETURNING email", batch, often_taken=True)
        assert sorted(direct) == [("a@x",), ("c@x",)]
        # Three rows, three ids drawn (ON CONFLICT draws one for the taken row too).
        assert cur.execute("SELECT last_value FROM emails_id_seq").fetchone() == (5,)
        batch = (["d@x", "y@x", "e@x"],)
        plain_first = insert_skipping_taken(cur, insert, "RETURNING email", batch)
        assert sorted(plain_first) == [("d@x",), ("e@x",)]
        # The plain attempt drew two ids (d@x, y@x) before it failed, then three more.
        assert cur.execute("SELECT last_value FROM emails_id_seq").fetchone() == (10,)
        assert cur.execute("SELECT email FROM emails ORDER BY email").fetchall() == [
            (e,) for e in ("a@x", "b@x", "c@x", "d@x", "e@x", "y@x")
        ]


def test_chunk_records_written_over_two_connections_are_sentrys_chunks(db_dsn):
    """Each model's written rows, counted in file order, in chunks of 1000: the same
    records however many connections share the models out, and written once."""
    mine = uuid.uuid4().hex
    kinds = {0: "Existing", 1: "Overwrite"}
    ledger = {  # model -> [(ordinal, old_pk, new_pk, kind, slug)]
        "sentry.projectoption": [
            (n, 10_000 - n, 3 * n, kinds.get(n % 7, "Inserted"), None) for n in range(1, 2501)
        ],
        "sentry.user": [(n, 500 + n, 900 + n, "Inserted", None) for n in range(1, 1201)],
        "sentry.team": [(n, n, 40 + n, "Inserted", f"team-{n}") for n in range(1, 6)],
        # Small, and first by name: its chunk takes the first id though written last.
        "sentry.environment": [(n, 70 + n, 80 + n, "Inserted", None) for n in range(1, 4)],
    }
    with psycopg.connect(db_dsn) as conn, psycopg.connect(db_dsn) as other:
        for model, rows in ledger.items():
            conn.execute(
                "INSERT INTO relocate_pk_map (import_uuid, model, old_pk, new_pk, kind, slug, "
                "ordinal, stage) SELECT %s, %s, o, n, k, s, d, 1 "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::text[]) "
                "AS t(d, o, n, k, s)",
                (mine, model, *map(list, zip(*rows))),
            )
        conn.commit()
        settings = ImportSettings(
            dsn=db_dsn, scope="global", import_uuid=mine, run_id=uuid.uuid4().hex
        )
        registry = Registry.load()
        written = write_chunks([conn, other], settings, registry, set(ledger))
        assert written == 3 + 1 + 1 + 2 + 2  # region 3 + 1 + 1, control 2, its replica 2
        assert write_chunks([conn], settings, registry, set(ledger)) == 0  # already there
        records = conn.execute(
            "SELECT model, min_ordinal, max_ordinal, min_source_pk, max_source_pk, "
            "min_inserted_pk, max_inserted_pk, inserted_map, existing_map, overwrite_map, "
            "inserted_identifiers FROM sentry_regionimportchunk WHERE import_uuid = %s "
            "UNION ALL SELECT model, min_ordinal, max_ordinal, min_source_pk, max_source_pk, "
            "min_inserted_pk, max_inserted_pk, inserted_map, existing_map, overwrite_map, "
            "inserted_identifiers FROM sentry_controlimportchunk WHERE import_uuid = %s",
            (mine, mine),
        ).fetchall()
        replicas = conn.execute(
            "SELECT model, min_ordinal FROM sentry_controlimportchunkreplica "
            "WHERE import_uuid = %s ORDER BY min_ordinal",
            (mine,),
        ).fetchall()
        # Ids in model and chunk order, whichever thread wrote which model: an import
        # writes the same ids every time.
        region_ids = conn.execute(
            "SELECT model, min_ordinal, id - min(id) OVER () FROM sentry_regionimportchunk "
            "WHERE import_uuid = %s ORDER BY id",
            (mine,),
        ).fetchall()
    expected = []
    for model, rows in ledger.items():
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            inserted = [r for r in chunk if r[3] == "Inserted"]

            def of(kind, rows=chunk):
                return {str(r[1]): r[2] for r in rows if r[3] == kind}

            expected.append(
                (
                    model,
                    start + 1,
                    start + len(chunk),
                    chunk[0][1],
                    max(r[1] for r in chunk),
                    inserted[0][2],
                    max(r[2] for r in inserted),
                    of("Inserted"),
                    of("Existing"),
                    of("Overwrite"),
                    {str(r[1]): r[4] for r in inserted if r[4] is not None},
                )
            )
    assert sorted(records) == sorted(expected)
    assert replicas == [("sentry.user", 1), ("sentry.user", 1001)]
    assert region_ids == [
        ("sentry.environment", 1, 0),
        ("sentry.projectoption", 1, 1),
        ("sentry.projectoption", 1001, 2),
        ("sentry.projectoption", 2001, 3),
        ("sentry.team", 1, 4),
    ]


def test_a_target_without_the_control_chunk_table_gets_its_replica_computed(db_dsn):
    mine = uuid.uuid4().hex
    with psycopg.connect(db_dsn) as conn:
        conn.execute("DROP TABLE sentry_controlimportchunk CASCADE")
        _fill(conn, mine, {"sentry.user": 1500, "sentry.team": 2})
        conn.commit()
        settings = ImportSettings(
            dsn=db_dsn, scope="global", import_uuid=mine, run_id=uuid.uuid4().hex
        )
        written = write_chunks([conn], settings, Registry.load(), {"sentry.user", "sentry.team"})
        assert written == 3
        replica = conn.execute(
            "SELECT model, min_ordinal, max_ordinal FROM sentry_controlimportchunkreplica "
            "WHERE import_uuid = %s ORDER BY id",
            (mine,),
        ).fetchall()
        assert replica == [("sentry.user", 1, 1000), ("sentry.user", 1001, 1500)]
