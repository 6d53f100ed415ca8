"""The synthetic export generator (``relocate generate``) and the benchmark harness."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from relocate.db.ddl import load_tables
from relocate.generate import (
    GLOBAL_ONLY,
    generate,
    org_counts,
    plan_export,
    register,
)
from relocate.schemas.registry import IMPORT_SCOPES, Registry
from tests.helpers import count, import_export

ROOT = Path(__file__).resolve().parent.parent


def _export(rows: int, seed: int = 0, scope: str = "organizations", shuffle: bool = False,
            tmp_dir: Path | None = None) -> bytes:
    buf = io.BytesIO()
    generate(buf, rows, seed=seed, scope=scope, shuffle=shuffle,
             tmp_dir=str(tmp_dir) if tmp_dir else None)
    return buf.getvalue()


@pytest.fixture(scope="module", params=["organizations", "global"])
def parsed(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """A 20,000-row export of each scope, parsed (small enough to hold whole here)."""
    return json.loads(_export(20_000, seed=7, scope=request.param))


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture(scope="module")
def tables() -> dict[str, Any]:
    return load_tables()["tables"]


# Measures from a fresh small process: Linux counts a child's pre-exec RSS (for a fork or
# vfork from pytest: all of pytest's memory) in its ru_maxrss.
_RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def _peak_rss_mb(argv: list[str]) -> tuple[int, float]:
    """Runs ``argv``; returns (exit status, peak RSS in MB of its largest process)."""
    result = subprocess.run([sys.executable, "-I", "-c", _RSS_WRAPPER, *argv],
                            capture_output=True, text=True)
    return result.returncode, int(result.stdout.split()[-1]) / 1024


# -- shape -------------------------------------------------------------------------------

def test_every_foreign_key_points_at_a_generated_row_of_its_model(
    parsed: list[dict[str, Any]], registry: Registry
) -> None:
    pks: dict[str, set[int]] = {}
    for row in parsed:
        pks.setdefault(row["model"], set()).add(row["pk"])
    checked = 0
    for row in parsed:
        for fk in registry[row["model"]].foreign_keys:
            value = row["fields"].get(fk.field)
            if value is None:
                assert fk.nullable, (row["model"], row["pk"], fk.field)
                continue
            assert value in pks.get(fk.target, ()), (row["model"], row["pk"], fk.field, value)
            checked += 1
    assert checked > len(parsed)  # most rows have at least one FK


def _where_holds(predicate: str | None, fields: dict[str, Any], by_column: dict[str, str]
                 ) -> bool:
    """Evaluates the partial-index predicates tables.json uses (fails on new ones)."""
    if predicate is None:
        return True
    if m := re.fullmatch(r"(\w+)", predicate):
        return bool(fields.get(by_column[m.group(1)]))
    if m := re.fullmatch(r"(\w+) = '([^']*)'", predicate):
        return fields.get(by_column[m.group(1)]) == m.group(2)
    raise AssertionError(f"unknown index predicate {predicate!r}: teach the test")


def test_unique_sets_are_respected(parsed: list[dict[str, Any]],
                                   tables: dict[str, Any]) -> None:
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in parsed:
        by_model.setdefault(row["model"], []).append(row)
    for model, rows in by_model.items():
        entry = tables[model]
        by_column = {c["column"]: c["field"] for c in entry["columns"]}
        sets = [(cols, None, False) for cols in entry["uniques"]]
        sets += [(i["columns"], i["where"], "lower(" in (i["expression"] or ""))
                 for i in entry["unique_indexes"]]
        sets.append((["id"], None, False))
        for columns, where, folded in sets:
            seen: set[tuple] = set()
            for row in rows:
                fields = {**row["fields"], "id": row["pk"]}
                if not _where_holds(where, fields, by_column):
                    continue
                key = tuple(fields.get(by_column[c]) for c in columns)
                if any(v is None for v in key):  # NULLs never collide in PostgreSQL
                    continue
                if folded:
                    key = tuple(str(v).lower() for v in key)
                assert key not in seen, (model, columns, key)
                seen.add(key)


def test_fields_are_columns_and_required_columns_are_present(
    parsed: list[dict[str, Any]], tables: dict[str, Any]
) -> None:
    for model in {r["model"] for r in parsed}:
        columns = tables[model]["columns"]
        known = {c["field"] for c in columns if c["column"] != "id"}
        required = {c["field"] for c in columns
                    if not c["nullable"] and c["default"] is None and c["column"] != "id"}
        for row in (r for r in parsed if r["model"] == model):
            fields = row["fields"]
            assert set(fields) <= known, (model, set(fields) - known)
            assert required <= set(fields), (model, required - set(fields))
            assert all(fields[f] is not None for f in required), (model, row["pk"])


def test_values_look_like_sentrys(parsed: list[dict[str, Any]], tables: dict[str, Any]
                                  ) -> None:
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
    types = {m: {c["field"]: c["type"] for c in e["columns"]} for m, e in tables.items()}
    for row in parsed:
        assert list(row) == ["model", "pk", "fields"]
        assert isinstance(row["pk"], int) and row["pk"] > 0
        for name, value in row["fields"].items():
            kind = types[row["model"]][name]
            if value is None:
                continue
            if kind == "timestamptz":
                assert stamp.fullmatch(value), (row["model"], name, value)
            elif kind.endswith("[]"):
                assert isinstance(value, list), (row["model"], name, value)
            elif name == "flags" or (row["model"] == "sentry.projectkey" and name == "roles"):
                assert isinstance(value, str) and value.isdigit()  # bitfields as strings
    options = [r for r in parsed if r["model"] == "sentry.option"]
    assert options and all(isinstance(json.loads(r["fields"]["value"]), (str, int, float, bool))
                           for r in options)
    assert max(r["pk"] for r in parsed if r["model"] == "sentry.project") > 10**15


def test_export_order_and_counts_follow_the_plan(parsed: list[dict[str, Any]],
                                                 registry: Registry) -> None:
    scope = "global" if any(r["model"] in GLOBAL_ONLY for r in parsed) else "organizations"
    orders = [registry[r["model"]].order for r in parsed]
    assert orders == sorted(orders)
    for model in {r["model"] for r in parsed}:
        pks = [r["pk"] for r in parsed if r["model"] == model]
        assert pks == sorted(pks) and len(set(pks)) == len(pks), model
    plan = plan_export(20_000, scope)
    assert Counter(r["model"] for r in parsed) == {m: n for m, n in plan.counts().items() if n}
    present = {r["model"] for r in parsed} & set(GLOBAL_ONLY)
    assert present == (set(GLOBAL_ONLY) if scope == "global" else set())


def test_proportions_match_the_documented_table() -> None:
    std = org_counts()
    assert sum(std.values()) == 757
    assert sum(org_counts(scope="global").values()) == 757 + 63
    assert std["sentry.user"] == 50 and std["sentry.organizationmember"] == 42
    assert std["sentry.team"] == 5 and std["sentry.project"] == 10
    assert std["sentry.projectkey"] == 20 and std["sentry.projectoption"] == 80
    assert set(org_counts(scope="global")) - set(std) == set(GLOBAL_ONLY)


@pytest.mark.parametrize("rows", [1_000, 2_000, 5_000, 12_345, 100_000, 999_999, 10_000_000])
@pytest.mark.parametrize("scope", ["organizations", "global"])
def test_row_count_is_within_one_percent(rows: int, scope: str) -> None:
    assert abs(plan_export(rows, scope).total - rows) <= rows / 100


def test_generated_count_equals_the_plan() -> None:
    data = _export(3_333)
    assert len(json.loads(data)) == plan_export(3_333).total
    assert data.count(b"\n") == plan_export(3_333).total + 2  # one row per line


# -- determinism, order, memory ---------------------------------------------------------

def test_same_seed_same_bytes_and_different_seeds_differ() -> None:
    a, b, c = _export(5_000, seed=1), _export(5_000, seed=1), _export(5_000, seed=2)
    assert a == b
    assert a != c
    assert len(json.loads(a)) == len(json.loads(c))


def test_same_bytes_across_processes(tmp_path: Path) -> None:
    """Hash randomisation must not leak into the output: two processes, two hash seeds."""
    outputs = []
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        result = subprocess.run(
            [sys.executable, "-m", "relocate.generate", "-", "--rows", "3000", "--seed", "5",
             "--scope", "global", "--quiet"], capture_output=True, env=env, check=True)
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] == _export(3_000, seed=5, scope="global")


def test_shuffle_gives_the_same_rows_in_another_order(tmp_path: Path) -> None:
    rows = 120_000  # more than two shuffle buckets
    ordered = _export(rows, seed=3)
    shuffled = _export(rows, seed=3, shuffle=True, tmp_dir=tmp_path)
    assert shuffled == _export(rows, seed=3, shuffle=True, tmp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # bucket files removed
    parsed = json.loads(shuffled)
    assert len(parsed) == plan_export(rows).total
    lines_a = ordered.split(b"\n")[1:-2]
    lines_b = shuffled.split(b"\n")[1:-2]
    strip = [line.rstrip(b",") for line in lines_a]
    strip_b = [line.rstrip(b",") for line in lines_b]
    assert strip != strip_b
    assert sorted(strip) == sorted(strip_b)
    models = [r["model"] for r in parsed]
    assert models.index("sentry.projectkey") < models.index("sentry.organization")


@pytest.mark.parametrize("shuffle", [False, True])
def test_generation_streams_in_bounded_memory(tmp_path: Path, shuffle: bool) -> None:
    out = tmp_path / "export.json"
    argv = [sys.executable, "-m", "relocate.generate", str(out), "--rows", "200000", "--quiet"]
    code, peak_mb = _peak_rss_mb(argv + (["--shuffle"] if shuffle else []))
    assert code == 0
    assert out.stat().st_size > 200_000 * 150
    assert peak_mb < 150, f"generating 200k rows peaked at {peak_mb:.0f} MB"
    assert [p.name for p in tmp_path.iterdir()] == ["export.json"]  # no temp files left
    with open(out, "rb") as f:
        assert f.read(2) == b"[\n"


def test_register_adds_the_generate_command(tmp_path: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "small.json"
    args = parser.parse_args(["generate", str(out), "--rows", "500", "--seed", "9", "--quiet"])
    assert args.func(args) == 0
    assert out.read_bytes() == _export(500, seed=9)
    bad = parser.parse_args(["generate", str(out), "--rows", "0"])
    assert bad.func(bad) == 2


# -- imports of generated exports ----------------------------------------------------------

def _tables_by_model(tables: dict[str, Any]) -> dict[str, str]:
    return {model: entry["table"] for model, entry in tables.items()}


def _check_import(dsn: str, scope: str, path: Path, registry: Registry,
                  tables: dict[str, Any]) -> None:
    rows = json.loads(path.read_bytes())
    per_model = Counter(r["model"] for r in rows)
    result = import_export(dsn, scope, path, "--silent")
    assert result.code == 0, result.err[-3000:]
    names = _tables_by_model(tables)
    for model, n in per_model.items():
        expected = n if registry[model].admitted_by(scope) else 0
        assert count(dsn, names[model]) == expected, (scope, model)


@pytest.mark.slow
def test_small_export_imports_in_organizations_scope(
    db_dsn: str, tmp_path: Path, registry: Registry, tables: dict[str, Any]
) -> None:
    path = tmp_path / "small.json"
    path.write_bytes(_export(2_000, seed=11))
    _check_import(db_dsn, "organizations", path, registry, tables)
    assert count(db_dsn, "sentry_option") == 0
    assert count(db_dsn, "sentry_organization") == plan_export(2_000).orgs


def test_small_shuffled_export_imports_in_config_scope(
    db_dsn: str, tmp_path: Path, registry: Registry, tables: dict[str, Any]
) -> None:
    path = tmp_path / "small.json"
    path.write_bytes(_export(2_000, seed=12, shuffle=True, tmp_dir=tmp_path))
    _check_import(db_dsn, "config", path, registry, tables)
    assert count(db_dsn, "sentry_option") == 12


@pytest.mark.slow
def test_small_export_imports_in_global_scope(
    db_dsn: str, tmp_path: Path, registry: Registry, tables: dict[str, Any]
) -> None:
    path = tmp_path / "small.json"
    path.write_bytes(_export(2_000, seed=13, scope="global"))
    assert set(GLOBAL_ONLY) <= {r["model"] for r in json.loads(path.read_bytes())}
    assert all(registry[m].admitted_by("global") for m in GLOBAL_ONLY)
    assert not any(registry[m].admitted_by("organizations") for m in GLOBAL_ONLY)
    _check_import(db_dsn, "global", path, registry, tables)


def test_generated_models_are_admitted_by_some_scope(registry: Registry) -> None:
    for model in org_counts(scope="global"):
        assert any(registry[model].admitted_by(s) for s in IMPORT_SCOPES), model


# -- the benchmark harness -------------------------------------------------------------------

@pytest.mark.slow
def test_benchmark_harness_writes_the_expected_report(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--rows", "1000,2000",
         "--scope", "config", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {"generated_at", "command", "scope", "machine", "results", "scaling"} <= set(report)
    assert report["scope"] == "config" and len(report["results"]) == 2
    for r in report["results"]:
        assert {"rows", "export_bytes", "generate_seconds", "import", "copy", "pg_restore",
                "ratios"} <= set(r)
        assert {"seconds", "rows_per_s", "rows_written", "peak_rss_mb", "peak_tree_rss_mb",
                "stages", "exit_code"} <= set(r["import"])
        assert r["import"]["exit_code"] == 0 and r["import"]["peak_rss_mb"] > 10
        assert r["import"]["rows_written"] > 0 and r["import"]["stages"]
        assert {"stage", "rows", "start_s", "seconds"} <= set(r["import"]["stages"][0])
        assert {"dump_seconds", "load_seconds", "rows", "rows_per_s", "tables"} <= set(r["copy"])
        assert r["copy"]["rows"] > 0 and r["copy"]["tables"] > 0
        assert {"dump_seconds", "restore_seconds"} <= set(r["pg_restore"])
        assert {"relocate_vs_copy_load", "relocate_vs_pg_restore"} <= set(r["ratios"])
    (scale,) = report["scaling"]
    assert {"rows_ratio", "rows_per_s_ratio", "peak_rss_ratio", "seconds_ratio"} <= set(scale)
    assert "relocate benchmark" in result.stdout
