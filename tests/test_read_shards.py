"""Several readers share an export: each emits the rows of its segment, together those of one."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from relocate.beam.read import (
    BAD,
    PREFIX_COST,
    ROWS_PER_ELEMENT,
    USERNAMES,
    _ReadExportFn,
    segment_starts,
)
from relocate.io.export_reader import BadRow, ExportFormatError
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


def _rows(batches: list) -> list[tuple]:
    return [row for _, rows in batches for row in rows]


@pytest.mark.parametrize("shards", [2, 3, 5])
def test_readers_emit_disjoint_segments_that_make_up_the_single_readers_rows(tmp_path, shards):
    src = _export(tmp_path / "e.json")
    single, single_bad = _read(src, 1, 0)
    assert len(single_bad) == 2 and all(isinstance(b, BadRow) for b in single_bad)
    shares = [_read(src, shards, shard) for shard in range(shards)]
    # Every row once, with its ordinal as one reader counts it; each bad row once.
    together = [row for batches, _ in shares for row in _rows(batches)]
    assert sorted(together, key=lambda r: (r[0], r[1])) == sorted(
        _rows(single), key=lambda r: (r[0], r[1])
    )
    assert sorted(b.position for _, bad in shares for b in bad) == [b.position for b in single_bad]
    if shards <= 3:
        assert all(batches for batches, _ in shares)  # the work is shared
    for batches, _ in shares:
        for model, rows in batches:
            assert {row[0] for row in rows} == {model}
            assert len(rows) <= ROWS_PER_ELEMENT


def test_a_model_of_one_run_is_one_readers_batch_whichever_segments_hold_its_rows(tmp_path):
    """Two roles of one name, far apart in a file split between two readers (the edge
    between the segments falls among the roles' rows): one batch writes both (the first
    Inserted and the second, finding it, Existing), where two batches side by side could
    both insert the name."""
    rows: list[dict] = [{"model": "sentry.user", "pk": 1, "fields": {"username": "u1"}}]
    rows += [
        {"model": "sentry.userrole", "pk": i, "fields": {"name": "Super Admin", "n": "x" * 40}}
        for i in range(1, 300)
    ]
    src = tmp_path / "roles.json"
    src.write_text(json.dumps(rows))
    outputs = [
        [batch for batch in _outputs(src, 2, shard)[0] if batch[0] == "sentry.userrole"]
        for shard in (0, 1)
    ]
    assert outputs[1] == [] and [[r[2] for r in b[1]] for b in outputs[0]] == [list(range(1, 300))]
    # The segments' edge lies among the roles.
    edge = segment_starts(src.stat().st_size, 2)[1]
    assert src.read_text().index('"sentry.userrole"') < edge < len(src.read_text()) - 100


def test_segments_shrink_along_the_file_and_cover_it():
    for shards in (2, 3, 4, 8):
        starts = segment_starts(1_000_000, shards)
        assert starts[0] == 0 and starts == sorted(starts) and len(starts) == shards
        lengths = [b - a for a, b in zip(starts, [*starts[1:], 1_000_000], strict=True)]
        assert lengths == sorted(lengths, reverse=True)
        # Equal work: the rows read for the ordinals only at PREFIX_COST each.
        work = [PREFIX_COST * start + n for start, n in zip(starts, lengths, strict=True)]
        assert max(work) - min(work) <= 2
    assert segment_starts(1_000_000, 2, prefix_cost=0.0) == [0, 500_000]
    assert segment_starts(0, 3) == [0, 0, 0]
    assert segment_starts(10, 1) == [0]


def test_a_reader_whose_segment_holds_no_element_emits_nothing(tmp_path):
    """An export far smaller than its readers: the empty segments emit nothing, the
    others every row once."""
    src = tmp_path / "small.json"
    src.write_text(json.dumps([{"model": "sentry.user", "pk": 1, "fields": {"username": "a"}}]))
    shares = [_read(src, 4, shard) for shard in range(4)]
    assert [len(_rows(batches)) for batches, _ in shares].count(1) == 1
    assert sum(len(_rows(batches)) for batches, _ in shares) == 1


def test_a_format_error_after_a_segment_is_raised_by_the_reader_that_reads_to_the_end(
    tmp_path,
):
    """Only the last reader reads to the end: it finds a file cut short, with the
    position a single reader names; a reader that stops before the cut emits its rows."""
    text = _export(tmp_path / "e.json").read_text()
    src = tmp_path / "cut.json"
    src.write_text(text[: len(text) - 40])
    with pytest.raises(ExportFormatError) as single:
        _read(src, 1, 0)
    with pytest.raises(ExportFormatError) as last:
        _read(src, 2, 1)
    assert str(last.value) == str(single.value)
    batches, _ = _read(src, 2, 0)
    assert _rows(batches)


def test_no_username_pairs_for_an_export_that_never_names_a_user_by_natural_key(tmp_path):
    """Exports since Sentry 23.9 hold pks: the users' pairs are spilled, never emitted."""
    src = _export(tmp_path / "e.json")
    for shards in (1, 3):
        assert all(not _outputs(src, shards, shard)[2] for shard in range(shards))


@pytest.mark.parametrize("where", ["first", "last"])
def test_the_last_reader_emits_every_users_pair_when_a_row_names_a_user_by_natural_key(
    tmp_path, where
):
    """A 23.7 export: the reader that reads to the end emits the pairs of all users, in
    file order, whichever reader emits their rows; a reference anywhere in the file
    counts, in another reader's segment too."""
    rows = json.loads(_export(tmp_path / "e.json").read_text())
    option = {"model": "sentry.useroption", "pk": 1, "fields": {"user": ["u5"], "key": "k"}}
    src = tmp_path / "legacy.json"
    src.write_text(json.dumps([option, *rows] if where == "first" else [*rows, option]))
    expected = [(f"u{i}", i) for i in range(1, 1800)]
    assert _outputs(src, 1, 0)[2] == expected
    assert [_outputs(src, 3, shard)[2] for shard in range(3)] == [[], [], expected]


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
    # Each reader counts the bytes of its own segment: together, the export's size.
    read_bytes = scalar(
        another_db_dsn,
        "SELECT sum(bytes)::bigint FROM relocate_progress WHERE import_uuid = %s AND kind = 'read'",
        (import_uuid,),
    )
    assert read_bytes == src.stat().st_size


def _everything(path: Path, shards: int) -> tuple[list, list, list] | str:
    """Rows, bad rows and pairs of all readers together, or the format error raised."""
    rows, bad, pairs = [], [], []
    try:
        for shard in range(shards):
            batches, b, p = _outputs(path, shards, shard)
            rows += _rows(batches)
            bad += b
            pairs += p
    except ExportFormatError as exc:
        return str(exc)
    return sorted(rows, key=lambda r: (r[0], r[1])), sorted(bad, key=lambda b: b.position), pairs


def _corpus_exports(tmp_path: Path) -> list[Path]:
    from tests.hostile_corpus import CORPUS

    paths = []
    for case in CORPUS:
        if case.max_rss_mb is not None:
            continue  # the large exports of the memory cases: read elsewhere
        out = tmp_path / case.name
        out.mkdir()
        paths.append(case.build(out))
    fixtures = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "sentry"
    return paths + sorted(fixtures.glob("*.json"))


def test_every_hostile_and_fixture_export_reads_the_same_split_across_readers(tmp_path):
    """The hostile corpus (bad rows, surrogates, deep nesting, cut files, garbage) and
    Sentry's fixtures: split across 2 and 3 readers, with segments as small as the
    files, the readers emit what one reader emits, ordinals and bad rows alike, or
    fail with its error."""
    exports = _corpus_exports(tmp_path)
    assert len(exports) > 40
    for path in exports:
        single = _everything(path, 1)
        for shards in (2, 3):
            assert _everything(path, shards) == single, (path.name, shards)


@pytest.mark.parametrize("shuffle", [False, True])
def test_generated_tenants_read_the_same_split_across_readers(tmp_path, shuffle):
    """A tenant in export order (a model's rows together) and shuffled: 2 and 4 readers
    emit one reader's rows. In export order a run of ROWS_PER_ELEMENT ordinals of a model
    is never split: it is one reader's batch, as one reader batches it."""
    from relocate.generate import generate

    src = tmp_path / "tenant.json"
    with src.open("wb") as f:
        generate(f, 12_000, seed=3, scope="global", shuffle=shuffle)
    single = _everything(src, 1)
    for shards in (2, 4):
        assert _everything(src, shards) == single, shards
        runs = [
            (model, (rows[0][1] - 1) // ROWS_PER_ELEMENT)
            for shard in range(shards)
            for model, rows in _outputs(src, shards, shard)[0]
        ]
        if not shuffle:
            assert len(runs) == len(set(runs))


def test_only_reader_0_reads_an_export_of_unknown_size(tmp_path, monkeypatch):
    """Standard input can be read once, and a size nobody can tell gives no segments:
    reader 0 emits every row, the others read nothing."""
    src = _export(tmp_path / "e.json")
    single, single_bad = _read(src, 1, 0)
    monkeypatch.setattr(
        "relocate.beam.read._ReadProgress.export_size", lambda self, path, report: None
    )
    assert _read(src, 2, 0) == (single, single_bad)
    assert _read(src, 2, 1) == ([], [])


def test_readers_after_the_first_leave_standard_input_alone():
    fn = _ReadExportFn("-", None, KNOWN, None, 2, USER_FIELDS)
    fn.setup()
    assert list(fn.process(1)) == []  # pytest's stdin raises on a read
