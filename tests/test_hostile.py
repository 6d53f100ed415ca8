"""Broken and hostile exports (``tests/hostile_corpus.py``): each fails cleanly or is
reported, and none corrupts the target.

For every case: the exit code; the message, finding or report row that names the row
(model and ordinal, or position) or the cause; the database afterwards (nothing at all
after an error, only the valid rows otherwise, no table lost); no imported password kept.
Cases that could hang or balloon run the CLI in a subprocess with a timeout and report
its peak memory (VmHWM).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from relocate.schemas.registry import Registry

from .helpers import IMPORTED_PASSWORD, import_export, query
from .hostile_corpus import ANY, CORPUS, PWNED_SENTINEL, Case, Entry

REPO = Path(__file__).resolve().parent.parent

#: Bookkeeping tables whose row counts vary with the import (checked separately).
BOOKKEEPING = frozenset(
    {
        "relocate_import",
        "relocate_report",
        "relocate_side_effect",
        "relocate_pk_map",
        "relocate_progress",
        "sentry_regionimportchunk",
        "sentry_controlimportchunk",
        "sentry_controlimportchunkreplica",
    }
)

#: Runs the CLI, then prints the process's peak resident memory, whatever happened.
_WRAPPER = """
import sys
try:
    from relocate.cli.main import main
    code = main(sys.argv[1:])
finally:
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print(f"\\nRELOCATE_TEST_VMHWM_KB={peak}", file=sys.stderr, flush=True)
sys.exit(code)
"""


@dataclass
class Outcome:
    code: int
    err: str
    seconds: float
    peak_mb: float | None = None


def run_isolated(dsn: str, scope: str, src: Path, flags: list[str], timeout: float) -> Outcome:
    """Runs ``relocate import`` in a subprocess; fails the test when it does not end."""
    argv = ["import", scope, str(src), "--dsn", dsn, "--no-prompt", *flags]
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _WRAPPER, *argv],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the import did not finish within {timeout:.0f} s (hang)")
    seconds = time.monotonic() - start
    peak = None
    for line in proc.stderr.splitlines():
        if line.startswith("RELOCATE_TEST_VMHWM_KB="):
            peak = int(line.split("=", 1)[1]) / 1024
    return Outcome(proc.returncode, proc.stderr, seconds, peak)


def run_in_process(dsn: str, scope: str, src: Path, flags: list[str]) -> Outcome:
    start = time.monotonic()
    run = import_export(dsn, scope, src, *flags)
    return Outcome(run.code, run.err, time.monotonic() - start)


def tables(dsn: str) -> set[str]:
    return {r[0] for r in query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def nonzero_counts(dsn: str) -> dict[str, int]:
    """Row counts of the non-empty target tables, bookkeeping tables left out."""
    names = sorted(tables(dsn) - BOOKKEEPING)
    union = " UNION ALL ".join(
        f"SELECT '{name}', count(*) FROM \"{name}\""
        for name in names  # catalog names
    )
    return {name: n for name, n in query(dsn, union) if n}


def _model_matches(expected: str, actual: str) -> bool:
    if expected.endswith("*"):
        return actual.startswith(expected[:-1])
    return actual == expected


def _matches(entry: Entry, model: str, ordinal: Any, reason: str, pk: Any) -> bool:
    return (
        _model_matches(entry.model, model)
        and ordinal == entry.ordinal
        and all(t.lower() in reason.lower() for t in entry.text)
        and (entry.pk == ANY or pk == entry.pk)
    )


def check_findings(case: Case, findings: list[dict], err: str) -> None:
    """Each expected finding is there (Sentry's format), and no other."""
    assert len(findings) == len(case.findings), findings
    for finding in findings:
        assert set(finding) == {"finding", "kind", "left_pk", "on", "reason", "right_pk"}
        assert finding["finding"] == "RpcImportError"
    for entry in case.findings:
        hits = [
            f
            for f in findings
            if f["kind"] in entry.kind
            and _matches(entry, f["on"]["model"], f["on"]["ordinal"], f["reason"], f["left_pk"])
        ]
        assert hits, f"no finding like {entry} in {findings}"
        assert hits[0]["kind"] in err


def check_report(case: Case, rows: list[dict]) -> None:
    """Each expected report row is there with its action and reason."""
    for entry in case.report:
        hits = [
            r
            for r in rows
            if r["action"] == entry.action
            and _matches(entry, r["model"], r["ordinal"], r["reason"], r["source_pk"])
        ]
        assert hits, f"no report row like {entry} in {rows[:20]}"
    expected_total = case.report_total if case.report_total is not None else len(case.report)
    assert len(rows) == expected_total, rows[:20]


def _param(case: Case) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    if case.isolated:  # a subprocess per case, watched for hangs and memory
        marks.append(pytest.mark.slow)
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CORPUS])
def test_hostile_export(case: Case, db_dsn: str, tmp_path: Path) -> None:
    if case.setup is not None:
        case.setup(db_dsn)
    tables_before = tables(db_dsn)
    src = case.build(tmp_path)
    findings_file, report_file = tmp_path / "findings.json", tmp_path / "report.json"
    flags = ["--findings-file", str(findings_file), "--report-file", str(report_file)]
    if case.isolated:
        run = run_isolated(db_dsn, case.scope, src, flags, case.timeout)
    else:
        run = run_in_process(db_dsn, case.scope, src, flags)

    if run.code == 1 and case.or_findings:
        case = dataclasses.replace(case, outcome="error", findings=case.or_findings)
    # No table lost or added (names that look like SQL are never SQL).
    assert tables(db_dsn) == tables_before
    assert not PWNED_SENTINEL.exists()
    if case.outcome == "error":
        assert run.code == 1, run.err[-3000:]
        if case.message:
            # A fatal read error: one clear line, no finding, the findings file empty.
            lines = [line for line in run.err.splitlines() if line.startswith("Error: ")]
            assert len(lines) == 1, run.err[-3000:]
            for text in case.message:
                assert text.lower() in lines[0].lower(), lines[0]
            assert findings_file.read_text() == ""
            assert "Traceback" not in lines[0]
        else:
            check_findings(case, json.loads(findings_file.read_text()), run.err)
            report = json.loads(report_file.read_text())["rows"]
            assert {r["action"] for r in report} == {"error"}
        # Nothing at all was written.
        assert query(db_dsn, "SELECT count(*) FROM relocate_pk_map") == [(0,)]
        assert query(db_dsn, "SELECT count(*) FROM auth_user") == [(0,)]
        assert nonzero_counts(db_dsn) == {}
    else:
        assert run.code == 0, run.err[-3000:]
        assert json.loads(findings_file.read_text()) == []
        check_report(case, json.loads(report_file.read_text())["rows"])
        assert nonzero_counts(db_dsn) == dict(case.counts)
        if case.verify is not None:
            case.verify(db_dsn)
    # Outside Global, no imported password survives.
    passwords = [r[0] for r in query(db_dsn, "SELECT password FROM auth_user")]
    assert all(p and p != IMPORTED_PASSWORD for p in passwords)
    print(f"{case.name}: exit {run.code} in {run.seconds:.1f} s, peak memory {run.peak_mb} MB")
    if case.max_rss_mb is not None:
        assert run.peak_mb is not None, run.err[-3000:]
        assert run.peak_mb < case.max_rss_mb, f"peak memory {run.peak_mb:.0f} MB"
    assert run.seconds < case.timeout


def test_corpus_is_complete() -> None:
    """The corpus has enough distinct cases, each with a checkable outcome."""
    names = [c.name for c in CORPUS]
    assert len(names) >= 30 and len(set(names)) == len(names)
    for case in CORPUS:
        assert case.outcome in ("error", "skip", "drop", "ok"), case.name
        if case.outcome == "error":
            assert bool(case.message) != bool(case.findings), case.name
        elif case.outcome in ("skip", "drop"):
            action = {"skip": "skipped", "drop": "dropped"}[case.outcome]
            assert any(e.action == action for e in case.report), case.name
        assert case.scope in ("users", "organizations", "config", "global"), case.name


def test_no_model_references_itself_or_forms_a_cycle() -> None:
    """Why the loop case loops through users: the registry has no self-reference and no
    two models referencing each other, so an export cannot build such a loop directly."""
    registry = Registry.load()
    targets = {m.name: {fk.target for fk in m.foreign_keys} for m in registry.models}
    assert not [m.name for m in registry.models if m.self_references]
    assert not [n for n, t in targets.items() if n in t]
    assert not [(a, b) for a, ts in targets.items() for b in ts if a in targets.get(b, ())]


def _unknown_rows_export(path: Path, junk_bytes: int, rows: int = 50_000) -> Path:
    junk = b"j" * junk_bytes
    with path.open("wb") as f:
        f.write(b"[")
        for pk in range(1, rows + 1):
            if pk > 1:
                f.write(b",")
            f.write(
                b'{"model": "sentry.nosuchmodel", "pk": %d, "fields": {"junk": "%s"}}' % (pk, junk)
            )
        f.write(b"]")
    return path


@pytest.mark.slow
def test_memory_does_not_grow_with_the_garbage_of_unknown_rows(db_dsn: str, tmp_path: Path) -> None:
    """50,000 unknown rows with 2 KB of junk each (100 MB) cost about what empty ones do."""
    runs = []
    for junk in (0, 2000):
        src = _unknown_rows_export(tmp_path / f"junk{junk}.json", junk)
        run = run_isolated(db_dsn, "users", src, ["--silent"], timeout=300)
        assert run.code == 0, run.err[-3000:]
        assert run.peak_mb is not None and run.peak_mb < 1024
        runs.append(run)
        src.unlink()
    small, big = runs
    print(f"peak memory: {small.peak_mb:.0f} MB without junk, {big.peak_mb:.0f} MB with 100 MB")
    assert big.peak_mb - small.peak_mb < 100
