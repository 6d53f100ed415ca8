"""Several readers share an export: each emits its own batches, together those of one."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from relocate.beam.read import BAD, ROWS_PER_ELEMENT, USERNAMES, _ReadExportFn, read_shard
from relocate.io.export_reader import BadRow
from tests.helpers import TWO_WORKERS, import_export, run_cli, scalar


def _export(path: Path) -> Path:
    rows: list[object] = []
    for i in range(1, 1800):
        rows.append({"model": "sentry.user", "pk": i, "fields": {"username": f"u{i}"}})
        if i % 3 == 0:
            rows.append({"model": "sentry.email", "pk": i, "fields": {"email": f"e{i}@x"}})
        if i % 700 == 0:
            rows.append(["not", "a", "row"])
    rows.append({"model": "sentry.nosuchmodel", "pk": 1, "fields": {"x": 1}})
    path.write_text(json.dumps(rows))
    return path


KNOWN = frozenset({"sentry.user", "sentry.email", "sentry.useroption"})
USER_FIELDS = {"sentry.useroption": ("user",)}


def _outputs(path: Path, shards: int, shard: int) -> tuple[list, list, list]:
    fn = _ReadExportFn(str(path), None, KNOWN, None, shards, USER_FIELDS)
    fn.setup()
    batches, bad, pairs = [], [], []
    for out in fn.process(shard):
        tag = getattr(out, "tag", None)
        if tag == BAD:
            bad.append(out.value)
        elif tag == USERNAMES:
            pairs.append(out.value)
        else:
            batches.append(out)
    return batches, bad, pairs


def _read(path: Path, shards: int, shard: int) -> tuple[list, list]:
    batches, bad, _ = _outputs(path, shards, shard)
    return batches, bad


def test_readers_emit_disjoint_shares_that_make_up_the_single_readers_batches(tmp_path):
    src = _export(tmp_path / "e.json")
    single, single_bad = _read(src, 1, 0)
    assert len(single_bad) == 2 and all(isinstance(b, BadRow) for b in single_bad)
    shares = [_read(src, 3, shard) for shard in range(3)]
    # Whole batches, each emitted by exactly one reader; the bad rows by reader 0 only.
    together = [batch for batches, _ in shares for batch in batches]
    key = lambda b: (b[0], b[1][0][1])  # noqa: E731 - (model, first ordinal)
    assert sorted(together, key=key) == sorted(single, key=key)
    assert [len(bad) for _, bad in shares] == [2, 0, 0]
    assert all(batches for batches, _ in shares)  # the work is shared
    for shard, (batches, _) in enumerate(shares):
        for model, rows in batches:
            assert {read_shard(model, row[1], 3) for row in rows} == {shard}


def test_a_models_batches_go_round_the_readers():
    owners = [read_shard("sentry.user", n, 2) for n in range(1, 4 * ROWS_PER_ELEMENT + 1)]
    runs = [owners[i : i + ROWS_PER_ELEMENT] for i in range(0, len(owners), ROWS_PER_ELEMENT)]
    assert all(len(set(run)) == 1 for run in runs)
    assert [run[0] for run in runs] in ([0, 1, 0, 1], [1, 0, 1, 0])


def test_no_username_pairs_for_an_export_that_never_names_a_user_by_natural_key(tmp_path):
    """Exports since Sentry 23.9 hold pks: the users' pairs are spilled, never emitted."""
    src = _export(tmp_path / "e.json")
    for shards in (1, 3):
        assert all(not _outputs(src, shards, shard)[2] for shard in range(shards))


def test_reader_0_emits_every_users_pair_when_a_row_names_a_user_by_natural_key(tmp_path):
    """A 23.7 export: reader 0 emits the pairs of all users, in file order, whichever
    reader emits their rows; a reference before the users counts too."""
    rows = json.loads(_export(tmp_path / "e.json").read_text())
    option = {"model": "sentry.useroption", "pk": 1, "fields": {"user": ["u5"], "key": "k"}}
    src = tmp_path / "legacy.json"
    src.write_text(json.dumps([option, *rows]))
    expected = [(f"u{i}", i) for i in range(1, 1800)]
    assert _outputs(src, 1, 0)[2] == expected
    assert [_outputs(src, 3, shard)[2] for shard in range(3)] == [expected, [], []]


@pytest.mark.slow
def test_a_tenant_read_by_two_readers_in_two_processes_imports_as_in_process(
    db_dsn, another_db_dsn, tmp_path
):
    """Global scope, a generated tenant with several elements per model: two worker
    processes, each reading half of the batches, give row for row what one process
    gives, and read and validate as many rows."""
    from tests.canonical import canonical_dump, integrity

    src = tmp_path / "tenant.json"
    made = run_cli("generate", str(src), "--rows", "6000", "--seed", "5", "--scope", "global")
    assert made.code == 0, made.err
    in_process = import_export(db_dsn, "global", src)
    assert in_process.code == 0, in_process.err
    import_uuid = uuid.uuid4().hex
    workers = import_export(
        another_db_dsn,
        "global",
        src,
        "--import-uuid",
        import_uuid,
        *TWO_WORKERS,
    )
    assert workers.code == 0, workers.err
    assert integrity(another_db_dsn) == {}
    assert canonical_dump(another_db_dsn) == canonical_dump(db_dsn)
    rows = len(json.loads(src.read_text()))
    assert scalar(another_db_dsn, "SELECT count(*) FROM relocate_pk_map") == rows
    for kind in ("read", "validated"):  # each row counted once, by whichever reader
        counted = scalar(
            another_db_dsn,
            "SELECT sum(rows)::bigint FROM relocate_progress WHERE import_uuid = %s AND kind = %s",
            (import_uuid, kind),
        )
        assert counted == rows, kind
