"""``relocate verify``: the target holds the export after imports in every scope, and each
kind of damage done to the target afterwards is caught and named."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.helpers import import_export, load_fixture, run_cli, scalar, write_export, write_rsa_key
from tests.hostile_corpus import CORPUS

#: Every case but a few quick ones (the inner loop, ``-m "not slow"``, keeps those).
SLOW = pytest.mark.slow

SNAPSHOT = Path("release-snapshots") / "test_at_24_7_0.json"
UUID = "0123456789abcdef0123456789abcdef"


def verify(dsn: str, src: Path, import_uuid: str = UUID, *flags: str):
    return run_cli("verify", str(src), "--import-uuid", import_uuid, "--dsn", dsn, *flags)


def imported(dsn: str, scope: str, src: Path, *flags: str) -> None:
    run = import_export(dsn, scope, src, "--import-uuid", UUID, *flags)
    assert run.code == 0, run.err


def problems(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(r"(mismatch|missing|extra): ", line)]


def total(out: str) -> dict[str, int]:
    """The totals line of the counts, by column."""
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("model "))
    titles = header.split()[1:]
    cells = next(line for line in lines if line.startswith("total ")).split()[1:]
    return {t: int(c.replace(",", "")) for t, c in zip(titles, cells, strict=True)}


def execute(dsn: str, statement: str, params: tuple = ()) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(statement, params)


def new_pk(dsn: str, model: str, old_pk: int) -> int:
    return scalar(
        dsn,
        "SELECT new_pk FROM relocate_pk_map WHERE import_uuid = %s AND model = %s AND old_pk = %s",
        (UUID, model, old_pk),
    )


# --- passes after imports in every scope ------------------------------------------------


@pytest.mark.parametrize(
    "scope",
    [*(pytest.param(s, marks=SLOW) for s in ("users", "organizations", "config")), "global"],
)
def test_fresh_install_verifies_in_every_scope(db_dsn, fixtures_dir, scope):
    src = fixtures_dir / "fresh-install.json"
    imported(db_dsn, scope, src)
    run = verify(db_dsn, src)
    assert run.code == 0, run.out + run.err
    assert problems(run.out) == []
    counts = total(run.out)
    assert counts["rows"] == 31
    assert counts["checked"] + counts["skipped"] == 31
    assert "Verified: the target holds the export" in run.out
    if scope == "global":  # the inner loop's one case of damage caught
        project = _first(src.parent, "sentry.project", src.name)
        execute(
            db_dsn,
            "UPDATE sentry_project SET slug = 'changed' WHERE id = %s",
            (new_pk(db_dsn, "sentry.project", project["pk"]),),
        )
        run = verify(db_dsn, src)
        assert run.code == 1
        assert problems(run.out) == [
            f"mismatch: sentry.project pk {project['pk']}: slug: "
            f"expected {project['fields']['slug']!r}, found 'changed'"
        ]


@SLOW
def test_report_accounts_for_skipped_rows(db_dsn, fixtures_dir):
    """A users import skips the organization rows: without their report entries, they are
    missing."""
    src = fixtures_dir / "fresh-install.json"
    imported(db_dsn, "users", src)
    execute(db_dsn, "DELETE FROM relocate_report WHERE model = 'sentry.project'")
    run = verify(db_dsn, src)
    assert run.code == 1
    project = _first(fixtures_dir, "sentry.project", src.name)
    assert problems(run.out) == [
        f"missing: sentry.project pk {project['pk']}: <row>: expected written, skipped or "
        "dropped, found no ledger entry and no report"
    ]


@SLOW
def test_repeated_pk(db_dsn, tmp_path, fixtures_dir):
    """An export repeating a pk: the import skips the later row, verify accounts for it
    by the report and checks the first against the target."""
    rows = load_fixture(fixtures_dir, "fresh-install.json")
    option = next(r for r in rows if r["model"] == "sentry.option")
    src = write_export(
        tmp_path / "repeated.json",
        [*rows, {**option, "fields": {**option["fields"], "key": "another.key"}}],
    )
    imported(db_dsn, "global", src)
    run = verify(db_dsn, src)
    assert run.code == 0, run.out
    assert total(run.out)["skipped"] == 1


@SLOW
def test_encrypted_export(db_dsn, tmp_path, fixtures_dir):
    """Verify decrypts as the import does (``--decrypt-with``)."""
    from relocate.io.crypto import encrypt_export

    pem, public = write_rsa_key(tmp_path)
    src = tmp_path / "export.tar"
    with (fixtures_dir / SNAPSHOT).open("rb") as plain, src.open("wb") as dest:
        encrypt_export(plain, dest, public_key_pem=public)
    imported(db_dsn, "organizations", src, "--decrypt-with", str(pem))
    run = verify(db_dsn, src, UUID, "--decrypt-with", str(pem))
    assert run.code == 0, run.out + run.err
    assert total(run.out)["rows"] == len(_export(fixtures_dir))
    run = verify(db_dsn, src)  # without the key, as the import refuses it
    assert run.code == 1
    assert problems(run.out) == []


@SLOW
@pytest.mark.parametrize("scope", ["users", "organizations", "config", "global"])
def test_release_snapshot_verifies_in_every_scope(db_dsn, fixtures_dir, scope):
    src = fixtures_dir / SNAPSHOT
    imported(db_dsn, scope, src)
    run = verify(db_dsn, src)
    assert run.code == 0, run.out + run.err
    assert problems(run.out) == []
    counts = total(run.out)
    assert counts["rows"] == counts["checked"] + counts["skipped"]


@SLOW
def test_renames_are_exempt(db_dsn, fixtures_dir):
    """A second import of the same users and organizations renames both: the renamed
    username and slug differ from the export, and are counted as exempt, not failed."""
    src = fixtures_dir / "duplicate-username-and-organization-slug.json"
    first = import_export(db_dsn, "organizations", src)
    assert first.code == 0, first.err
    imported(db_dsn, "organizations", src)
    run = verify(db_dsn, src)
    assert run.code == 0, run.out + run.err
    assert total(run.out)["exempt-only"] >= 2  # the users and organizations renamed


@SLOW
def test_merged_users_are_checked_for_existence(db_dsn, fixtures_dir):
    src = fixtures_dir / "fresh-install.json"
    assert import_export(db_dsn, "users", src).code == 0
    imported(db_dsn, "users", src, "--merge-users")
    run = verify(db_dsn, src)
    assert run.code == 0, run.out + run.err
    assert total(run.out)["existing"] >= 2  # both users merged


@SLOW
def test_import_verify_flag(db_dsn, fixtures_dir):
    src = fixtures_dir / "fresh-install.json"
    run = import_export(db_dsn, "global", src, "--import-uuid", UUID, "--verify")
    assert run.code == 0, run.err
    assert "Verified: the target holds the export" in run.err


def test_import_verify_refuses_stdin(db_dsn):
    run = import_export(db_dsn, "users", "-", "--verify")
    assert run.code == 2
    assert "--verify" in run.err


def test_unknown_import(db_dsn, fixtures_dir):
    run = verify(db_dsn, fixtures_dir / "fresh-install.json")
    assert run.code == 1
    assert f"the target has no import {UUID}" in run.err


#: The hostile exports that import (ok, skip, drop) in the test process.
HOSTILE = [
    c for c in CORPUS if c.outcome in ("ok", "skip", "drop") and not c.isolated and c.xfail is None
]


@SLOW
@pytest.mark.parametrize("case", HOSTILE, ids=[c.name for c in HOSTILE])
def test_hostile_exports_that_import_verify(case, db_dsn, tmp_path):
    """Odd values stored literally, unknown and NUL-named models, extreme pks, repeated
    rows: what the import accepts, verify reads back and accounts for."""
    if case.setup is not None:
        case.setup(db_dsn)
    src = case.build(tmp_path)
    imported(db_dsn, case.scope, src)
    run = verify(db_dsn, src)
    assert run.code == 0, run.out[-3000:] + run.err[-2000:]
    assert problems(run.out) == []


# --- damage is caught and named -----------------------------------------------------------


@pytest.fixture(scope="module")
def snapshot_import(database_from, fixtures_dir) -> Iterator[str]:
    """The release snapshot imported once in Global scope; tests change clones of it."""
    with database_from(prefix="verify_src") as dsn:
        imported(dsn, "global", fixtures_dir / SNAPSHOT)
        yield dsn


@pytest.fixture
def damaged(database_from, snapshot_import) -> Iterator[str]:
    with database_from(snapshot_import) as dsn:
        yield dsn


@SLOW
def test_changed_value(damaged, fixtures_dir):
    old = _first(fixtures_dir, "sentry.project")
    project = new_pk(damaged, "sentry.project", old["pk"])
    execute(damaged, "UPDATE sentry_project SET name = 'renamed' WHERE id = %s", (project,))
    run = verify(damaged, fixtures_dir / SNAPSHOT)
    assert run.code == 1
    assert problems(run.out) == [
        f"mismatch: sentry.project pk {old['pk']}: name: expected {old['fields']['name']!r}, "
        "found 'renamed'"
    ]
    assert total(run.out)["mismatched"] == 1


@SLOW
def test_deleted_row(damaged, fixtures_dir):
    pk = _first(fixtures_dir, "sentry.useroption")["pk"]
    option = new_pk(damaged, "sentry.useroption", pk)
    execute(damaged, "DELETE FROM sentry_useroption WHERE id = %s", (option,))
    run = verify(damaged, fixtures_dir / SNAPSHOT)
    assert run.code == 1
    assert problems(run.out) == [
        f"missing: sentry.useroption pk {pk}: <row>: expected sentry_useroption id {option}, "
        "found no such row"
    ]
    assert total(run.out)["missing"] == 1


@SLOW
def test_foreign_key_pointing_at_the_wrong_row(damaged, fixtures_dir):
    emails = [r for r in _export(fixtures_dir) if r["model"] == "sentry.useremail"]
    first = emails[0]
    other = next(e for e in emails if e["fields"]["user"] != first["fields"]["user"])
    right = new_pk(damaged, "sentry.user", first["fields"]["user"])
    wrong = new_pk(damaged, "sentry.user", other["fields"]["user"])
    execute(
        damaged,
        "UPDATE sentry_useremail SET user_id = %s WHERE id = %s",
        (wrong, new_pk(damaged, "sentry.useremail", first["pk"])),
    )
    run = verify(damaged, fixtures_dir / SNAPSHOT)
    assert run.code == 1
    assert problems(run.out) == [
        f"mismatch: sentry.useremail pk {first['pk']}: user_id: expected {right}, found {wrong}"
    ]


@SLOW
def test_extra_ledger_entry(damaged, fixtures_dir):
    """A row the ledger says the import wrote, for a source pk the export does not hold."""
    new = scalar(
        damaged,
        "INSERT INTO sentry_option (key, value, last_updated, last_updated_by) "
        "VALUES ('smuggled', '1', now(), 'unknown') RETURNING id",
    )
    execute(
        damaged,
        "INSERT INTO relocate_pk_map (import_uuid, model, old_pk, new_pk, kind, ordinal, stage) "
        "VALUES (%s, 'sentry.option', 999, %s, 'Inserted', 99, 1)",
        (UUID, new),
    )
    run = verify(damaged, fixtures_dir / SNAPSHOT)
    assert run.code == 1
    assert problems(run.out) == [
        f"extra: sentry.option pk 999: <row>: expected no such row in the export, "
        f"found ledger: Inserted as id {new}"
    ]
    assert total(run.out)["extra"] == 1


@SLOW
def test_escapes_export_text(damaged, fixtures_dir):
    project = new_pk(damaged, "sentry.project", _first(fixtures_dir, "sentry.project")["pk"])
    execute(damaged, "UPDATE sentry_project SET name = %s WHERE id = %s", ("\x1b[31mred", project))
    run = verify(damaged, fixtures_dir / SNAPSHOT)
    assert run.code == 1
    assert "\x1b" not in run.out
    assert "\\x1b[31mred" in run.out


def _export(fixtures_dir: Path, name: Path | str = SNAPSHOT) -> list[dict]:
    return load_fixture(fixtures_dir, str(name))


def _first(fixtures_dir: Path, model: str, name: Path | str = SNAPSHOT) -> dict:
    return next(r for r in _export(fixtures_dir, name) if r["model"] == model)


# --- a large export, in bounded memory ----------------------------------------------------

_PEAK = """
import sys, time
from relocate.cli.main import main
start = time.monotonic()
code = main(sys.argv[1:])
seconds = time.monotonic() - start
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
print(f"PEAK_KB {peak} SECONDS {seconds:.1f} CODE {code}")
"""


def peak_verify(dsn: str, src: Path, import_uuid: str) -> tuple[int, float, int, str]:
    """Runs ``relocate verify`` in a process of its own: (peak RSS in kB, seconds, exit
    status, output)."""
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _PEAK,
            "verify",
            str(src),
            "--import-uuid",
            import_uuid,
            "--dsn",
            dsn,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"PEAK_KB (\d+) SECONDS (\S+) CODE (\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    return int(match[1]), float(match[2]), int(match[3]), done.stdout


@SLOW
def test_large_export_in_bounded_memory(db_dsn, tmp_path):
    """20k and 100k rows: verify passes, and its peak memory hardly grows with the export
    (a Global import wipes what the one before wrote)."""
    peaks = {}
    for n, rows in enumerate((20_000, 100_000)):
        src = tmp_path / f"gen{rows}.json"
        assert run_cli("generate", str(src), "--rows", str(rows), "--scope", "global").code == 0
        import_uuid = f"{n:032x}"
        run = import_export(db_dsn, "global", src, "--import-uuid", import_uuid)
        assert run.code == 0, run.err
        peak, seconds, code, out = peak_verify(db_dsn, src, import_uuid)
        print(f"{rows} rows: verify {seconds} s, peak {peak / 1024:.0f} MB")
        assert code == 0, out
        assert problems(out) == []
        peaks[rows] = peak
    assert peaks[100_000] < peaks[20_000] * 1.3



def test_json_equality_tells_booleans_from_numbers():
    from relocate.logic.verify import same_value

    assert same_value({"a": [1, 2.5, None, "x"]}, {"a": [1.0, 2.5, None, "x"]}, "json")
    assert not same_value({"a": True}, {"a": 1}, "json")
    assert not same_value({"a": 1}, {"a": "1"}, "json")
    assert not same_value({"a": 1}, {"a": 1, "b": 2}, "json")
    assert same_value(
        "2023-06-22T22:59:55.488Z", _utc(2023, 6, 22, 22, 59, 55, 488000), "timestamp"
    )
    assert not same_value("2023-06-22T22:59:55Z", _utc(2023, 6, 22, 22, 59, 56), "timestamp")


def _utc(*parts: int):
    from datetime import datetime, timezone

    return datetime(*parts, tzinfo=timezone.utc)
