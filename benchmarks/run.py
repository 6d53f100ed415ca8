"""The performance harness: relocate's import against PostgreSQL's own loaders, same rows.

For each size N it generates a synthetic export (``relocate.generate``, export order),
starts nothing new (one throwaway cluster serves the whole run), and measures:

* **relocate**: ``relocate import <scope> EXPORT --dsn DSN --no-prompt --silent`` in a
  subprocess on a fresh database with the schema: wall time, rows/s, peak RSS (the
  largest single process of the import's tree, from RUSAGE_CHILDREN of a small wrapper
  process; Beam workers included)
  and the peak RSS of the whole tree summed (sampled from /proc), and the time per stage
  read back from the ledger (``relocate_pk_map.created_at``);
* **COPY** (the physical limit): every table the import filled, dumped with
  ``COPY ... TO STDOUT (FORMAT BINARY)`` and loaded with ``COPY ... FROM STDIN`` into a
  fresh database with the same constraints, FK targets first, one transaction per table;
  only the load is the anchor, the dump is reported beside it;
* **pg_restore**: ``pg_dump -Fc`` of the imported database (relocate's ledger data
  excluded) restored into an empty database.

It prints a table and writes everything to ``--out`` as JSON, with the ratios relocate /
COPY load and relocate / pg_restore, and for each pair of consecutive sizes how rows/s,
peak RSS and time scale.

Usage (see benchmarks/README.md)::

    .venv/bin/python benchmarks/run.py --rows 100000,1000000 [--with-10m] \\
        [--scope organizations] --out benchmarks/results/latest.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from relocate.db.ddl import create_schema, load_tables
from relocate.db.ledger import LEDGER_TABLES
from relocate.db.localpg import LocalCluster, find_pg_bindir
from relocate.generate import generate
from relocate.schemas.registry import Registry

IMPORT_SCOPES = ("organizations", "config", "users", "global")
_COPY_BLOCK = 1 << 20


def _log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _with_db(dsn: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, dbname=dbname)


def _create_db(server_dsn: str, name: str, schema: bool) -> str:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = _with_db(server_dsn, name)
    if schema:
        with psycopg.connect(dsn) as conn:
            create_schema(conn)
    return dsn


def _drop_db(server_dsn: str, name: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


# -- the import, with its memory ---------------------------------------------------------

def _proc_stats() -> dict[int, list[str]]:
    """pid -> the fields of /proc/<pid>/stat from the third (state) on, for every process
    (the command name may hold spaces and parentheses: split after the last ')')."""
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        stats[int(entry)] = stat[stat.rfind(b")") + 2:].decode().split()
    return stats


def _tree_rss_kb(root: int, include_root: bool = True) -> int:
    """Sum of VmRSS (kB) over ``root``'s descendants and, optionally, itself (/proc)."""
    parents = {pid: int(fields[1]) for pid, fields in _proc_stats().items()}
    tree, frontier = {root}, [root]
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    while frontier:
        for child in children.get(frontier.pop(), ()):
            if child not in tree:
                tree.add(child)
                frontier.append(child)
    if not include_root:
        tree.discard(root)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


# Runs argv[2:] and writes its children's peak RSS (kB) to argv[1]. A fresh small process
# measures, because Linux carries a process's pre-exec peak (for a fork or vfork child: the
# parent's whole RSS) over into ru_maxrss: measured from the harness, the harness's own
# memory would count as the import's.
# It also writes the CPU seconds of the whole tree (user and system; Beam's workers are
# the launcher's children, reaped by it, so they count).
_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "with open(sys.argv[1], 'w') as f:\n"
    "    f.write(f'{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}')\n"
    "sys.exit(code)\n"
)


def server_cpu_seconds(data_dir: Path) -> float | None:
    """CPU seconds the cluster's processes have used so far (Linux): the postmaster's own
    and its ended children's (cutime, cstime), plus its running children's. The difference
    across a run is the server's CPU for it, background workers included. None without
    /proc."""
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        stats = _proc_stats()
        # utime, stime, cutime, cstime of the postmaster; utime, stime of its children.
        ticks = sum(int(x) for x in stats[postmaster][11:15])
    except (OSError, ValueError, IndexError, KeyError):
        return None
    ticks += sum(
        int(fields[11]) + int(fields[12])
        for fields in stats.values()
        if int(fields[1]) == postmaster
    )
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class ChildRun:
    """A finished subprocess: exit status, wall time and memory."""

    code: int
    seconds: float
    max_rss_mb: float
    tree_rss_mb: float
    log: str = ""
    #: CPU seconds of the command's whole tree (user and system).
    cpu_seconds: float = 0.0


def run_measured(argv: list[str], log_path: Path, sample_every: float = 0.2) -> ChildRun:
    """Runs ``argv``; returns its exit status, wall time and peak memory.

    ``max_rss_mb`` is ``ru_maxrss`` of the command as its (tiny) wrapper process sees it
    (RUSAGE_CHILDREN): the largest resident set of any single process of the command's
    tree, Beam worker processes included. ``tree_rss_mb`` is the largest sum over the tree
    seen by sampling /proc every ``sample_every`` seconds, which also counts workers that
    run side by side.
    """
    peak = [0]
    done = threading.Event()
    rss_file = log_path.with_suffix(".maxrss")
    wrapped = [sys.executable, "-I", "-c", _WRAPPER, str(rss_file), *argv]
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=log, stderr=subprocess.STDOUT)

        def sample() -> None:
            while not done.wait(sample_every):
                peak[0] = max(peak[0], _tree_rss_kb(proc.pid, include_root=False))

        sampler = threading.Thread(target=sample, daemon=True)
        if os.path.isdir("/proc"):
            sampler.start()
        code = proc.wait()
        seconds = time.perf_counter() - start
        done.set()
    if sampler.is_alive():
        sampler.join()
    max_rss_kb, cpu = (rss_file.read_text().split() if rss_file.exists() else ["0", "0"])
    text = log_path.read_text(errors="replace")
    return ChildRun(code, seconds, int(max_rss_kb) / 1024, peak[0] / 1024, text[-4000:],
                    float(cpu))


def _relocate_argv() -> list[str]:
    script = Path(sys.executable).with_name("relocate")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "relocate.cli.main"]


def stage_times(dsn: str, import_uuid: str) -> list[dict[str, Any]]:
    """Per stage: rows, start offset and duration, from the ledger's commit timestamps."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT stage, min(created_at), max(created_at), count(*) FROM relocate_pk_map "
            "WHERE import_uuid = %s GROUP BY stage ORDER BY stage", (import_uuid,)
        ).fetchall()
        started = conn.execute("SELECT started_at, finished_at FROM relocate_import "
                               "WHERE import_uuid = %s", (import_uuid,)).fetchone()
    origin = started[0] if started else (rows[0][1] if rows else None)
    return [
        {"stage": stage, "rows": n,
         "start_s": round((first - origin).total_seconds(), 3),
         "seconds": round((last - first).total_seconds(), 3)}
        for stage, first, last, n in rows
    ]


# -- the COPY anchor -----------------------------------------------------------------

def load_order(tables_doc: dict[str, Any], registry: Registry) -> list[str]:
    """Every table of the schema, FK targets before the tables that reference them.

    Ties are broken by the registry's stage and order (non-model tables last), so the
    order is the import's stage order wherever the registry has a say.
    """
    entries = tables_doc["tables"]
    rank: dict[str, tuple[int, int, str]] = {}
    for model, entry in entries.items():
        info = registry.get(model)
        rank[entry["table"]] = ((info.stage, info.order, entry["table"]) if info
                                else (10**6, 10**6, entry["table"]))
    deps = {e["table"]: {fk["ref_table"] for fk in e["foreign_keys"]
                         if fk["ref_table"] != e["table"] and fk["ref_table"] in rank}
            for e in entries.values()}
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(deps):
        ready = sorted((t for t in deps if t not in placed and deps[t] <= placed),
                       key=rank.__getitem__)
        if not ready:  # a cycle: place the lowest-ranked remaining table
            ready = sorted((t for t in deps if t not in placed), key=rank.__getitem__)[:1]
        for table in ready[:1]:
            order.append(table)
            placed.add(table)
    return order


def table_counts(dsn: str, tables: list[str]) -> dict[str, int]:
    counts = {}
    with psycopg.connect(dsn) as conn:
        for table in tables:
            counts[table] = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()[0]
    return counts


def copy_anchor(server_dsn: str, source_dsn: str, target_db: str, tables: list[str],
                workdir: Path, data_dir: Path | None = None) -> dict[str, Any]:
    """Dumps ``tables`` with COPY TO and loads them into a fresh schema with COPY FROM."""
    files: list[tuple[str, Path]] = []
    start = time.perf_counter()
    with psycopg.connect(source_dsn) as conn, conn.cursor() as cur:
        for table in tables:
            path = workdir / f"copy-{table}.bin"
            with open(path, "wb") as f, cur.copy(
                sql.SQL("COPY {} TO STDOUT (FORMAT BINARY)").format(sql.Identifier(table))
            ) as copy:
                for block in copy:
                    f.write(block)
            files.append((table, path))
    dump_seconds = time.perf_counter() - start
    target_dsn = _create_db(server_dsn, target_db, schema=True)
    server_before = server_cpu_seconds(data_dir) if data_dir else None
    client_before = time.process_time()
    start = time.perf_counter()
    with psycopg.connect(target_dsn) as conn:
        for table, path in files:
            with conn.transaction(), conn.cursor() as cur, open(path, "rb") as f, cur.copy(
                sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(sql.Identifier(table))
            ) as copy:
                while block := f.read(_COPY_BLOCK):
                    copy.write(block)
    load_seconds = time.perf_counter() - start
    client_cpu = time.process_time() - client_before
    server_after = server_cpu_seconds(data_dir) if data_dir else None
    size = sum(p.stat().st_size for _, p in files)
    for _, path in files:
        path.unlink()
    _drop_db(server_dsn, target_db)
    result = {"tables": len(files), "dump_seconds": round(dump_seconds, 3),
              "load_seconds": round(load_seconds, 3), "bytes": size,
              "load_client_cpu_s": round(client_cpu, 2)}
    if server_before is not None and server_after is not None:
        result["load_server_cpu_s"] = round(server_after - server_before, 2)
    return result


def pg_restore_anchor(cluster: LocalCluster, server_dsn: str, source_db: str,
                      target_db: str, workdir: Path) -> dict[str, Any]:
    """``pg_dump -Fc`` of the imported database, ``pg_restore`` into an empty one."""
    bindir = find_pg_bindir()
    conn_args = ["-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres"]
    dump = workdir / f"{source_db}.dump"
    start = time.perf_counter()
    subprocess.run([f"{bindir}/pg_dump", *conn_args, "-Fc", "-f", str(dump),
                    *[f"--exclude-table-data={t}" for t in LEDGER_TABLES], source_db],
                   check=True)
    dump_seconds = time.perf_counter() - start
    _create_db(server_dsn, target_db, schema=False)
    start = time.perf_counter()
    subprocess.run([f"{bindir}/pg_restore", *conn_args, "-d", target_db, "--no-owner",
                    str(dump)], check=True)
    restore_seconds = time.perf_counter() - start
    size = dump.stat().st_size
    dump.unlink()
    _drop_db(server_dsn, target_db)
    return {"dump_seconds": round(dump_seconds, 3),
            "restore_seconds": round(restore_seconds, 3), "bytes": size}


# -- one size --------------------------------------------------------------------------

@dataclass
class Settings:
    scope: str
    seed: int
    workdir: Path
    import_args: list[str] = field(default_factory=list)
    anchors: bool = True


def bench_one(n: int, cluster: LocalCluster, settings: Settings) -> dict[str, Any]:
    """Generates, imports and anchors one export of about ``n`` rows."""
    server_dsn = cluster.dsn()
    gen_scope = "global" if settings.scope == "global" else "organizations"
    export = settings.workdir / f"export-{n}.json"
    _log(f"[{n:,}] generating ({gen_scope} scope, seed {settings.seed})")
    with open(export, "wb", buffering=1 << 20) as f:
        gen = generate(f, n, seed=settings.seed, scope=gen_scope)

    db = f"bench_{n}"
    dsn = _create_db(server_dsn, db, schema=True)
    import_uuid = uuid.uuid4().hex
    argv = [*_relocate_argv(), "import", settings.scope, str(export), "--dsn", dsn,
            "--no-prompt", "--silent", "--import-uuid", import_uuid, *settings.import_args]
    _log(f"[{n:,}] importing: {' '.join(argv[1:])}")
    server_before = server_cpu_seconds(cluster.data_dir)
    run = run_measured(argv, settings.workdir / f"import-{n}.log")
    server_after = server_cpu_seconds(cluster.data_dir)
    if run.code != 0:
        _log(f"[{n:,}] import failed with exit status {run.code}:\n{run.log}")
    stages = stage_times(dsn, import_uuid)
    written = sum(s["rows"] for s in stages)
    result: dict[str, Any] = {
        "rows": gen.rows,
        "organizations": gen.orgs,
        "export_bytes": export.stat().st_size,
        "generate_seconds": round(gen.seconds, 3),
        "import": {
            "scope": settings.scope,
            "args": settings.import_args,
            "exit_code": run.code,
            "seconds": round(run.seconds, 3),
            "rows_per_s": round(gen.rows / run.seconds, 1),
            "rows_written": written,
            "written_per_s": round(written / run.seconds, 1),
            "peak_rss_mb": round(run.max_rss_mb, 1),
            "peak_tree_rss_mb": round(run.tree_rss_mb, 1),
            "cpu_s": round(run.cpu_seconds, 2),
            "stages": stages,
        },
    }
    if server_before is not None and server_after is not None:
        result["import"]["server_cpu_s"] = round(server_after - server_before, 2)
    if run.code != 0:
        result["import"]["log_tail"] = run.log
    if settings.anchors:
        tables_doc = load_tables()
        order = load_order(tables_doc, Registry.load())
        counts = table_counts(dsn, order)
        filled = [t for t in order if counts[t]]
        _log(f"[{n:,}] COPY anchor: {len(filled)} tables, {sum(counts.values()):,} rows")
        copy = copy_anchor(server_dsn, dsn, f"{db}_copy", filled, settings.workdir,
                           cluster.data_dir)
        copy["rows"] = sum(counts.values())
        copy["rows_per_s"] = round(copy["rows"] / copy["load_seconds"], 1) \
            if copy["load_seconds"] else None
        copy["table_rows"] = {t: counts[t] for t in filled}
        _log(f"[{n:,}] pg_dump / pg_restore anchor")
        restore = pg_restore_anchor(cluster, server_dsn, db, f"{db}_restore", settings.workdir)
        result["copy"] = copy
        result["pg_restore"] = restore
        result["ratios"] = {
            "relocate_vs_copy_load": round(run.seconds / copy["load_seconds"], 2)
            if copy["load_seconds"] else None,
            "relocate_vs_pg_restore": round(run.seconds / restore["restore_seconds"], 2)
            if restore["restore_seconds"] else None,
        }
        # CPU against CPU: steadier than wall time on a machine whose speed varies.
        imp = result["import"]
        if "server_cpu_s" in imp and "load_server_cpu_s" in copy:
            copy_cpu = copy["load_server_cpu_s"] + copy["load_client_cpu_s"]
            if copy_cpu > 0:
                result["ratios"]["relocate_cpu_vs_copy_load_cpu"] = round(
                    (imp["cpu_s"] + imp["server_cpu_s"]) / copy_cpu, 2)
    export.unlink()
    _drop_db(server_dsn, db)
    return result


def scaling(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """How each figure changes from one size to the next (ratios: larger / smaller)."""
    out = []
    for a, b in zip(results, results[1:]):
        def ratio(x: float | None, y: float | None) -> float | None:
            return round(y / x, 3) if x and y is not None else None

        entry = {
            "from_rows": a["rows"], "to_rows": b["rows"],
            "rows_ratio": ratio(a["rows"], b["rows"]),
            "seconds_ratio": ratio(a["import"]["seconds"], b["import"]["seconds"]),
            "rows_per_s_ratio": ratio(a["import"]["rows_per_s"], b["import"]["rows_per_s"]),
            "peak_rss_ratio": ratio(a["import"]["peak_rss_mb"], b["import"]["peak_rss_mb"]),
            "peak_tree_rss_ratio": ratio(a["import"]["peak_tree_rss_mb"],
                                         b["import"]["peak_tree_rss_mb"]),
        }
        if "copy" in a and "copy" in b:
            entry["copy_rows_per_s_ratio"] = ratio(a["copy"]["rows_per_s"],
                                                   b["copy"]["rows_per_s"])
            entry["relocate_vs_copy_load_ratio"] = ratio(
                a["ratios"]["relocate_vs_copy_load"], b["ratios"]["relocate_vs_copy_load"])
        out.append(entry)
    return out


def _machine(cluster: LocalCluster) -> dict[str, Any]:
    with psycopg.connect(cluster.dsn()) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    mem_kb = None
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "memory_mb": mem_kb // 1024 if mem_kb else None,
            "platform": platform.platform(), "python": platform.python_version(),
            "postgres": server, "cluster": "throwaway, fsync=off, synchronous_commit=off"}


def print_report(report: dict[str, Any]) -> None:
    """The human-readable summary on stdout."""
    print(f"relocate benchmark: import {report['scope']} on {report['machine']['cpus']} "
          f"CPUs, PostgreSQL {report['machine']['postgres']}")
    header = ("rows", "relocate s", "rows/s", "written", "peak RSS MB", "tree RSS MB",
              "COPY load s", "x COPY", "pg_restore s", "x restore")
    lines = [header]
    for r in report["results"]:
        imp = r["import"]
        lines.append((
            f"{r['rows']:,}", f"{imp['seconds']:.1f}", f"{imp['rows_per_s']:,.0f}",
            f"{imp['rows_written']:,}", f"{imp['peak_rss_mb']:.0f}",
            f"{imp['peak_tree_rss_mb']:.0f}",
            f"{r['copy']['load_seconds']:.2f}" if "copy" in r else "-",
            f"{r['ratios']['relocate_vs_copy_load']:.1f}" if "ratios" in r else "-",
            f"{r['pg_restore']['restore_seconds']:.2f}" if "pg_restore" in r else "-",
            f"{r['ratios']['relocate_vs_pg_restore']:.1f}" if "ratios" in r else "-",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(v.rjust(w) for v, w in zip(line, widths)))
    for r in report["results"]:
        stages = ", ".join(f"{s['stage']}: {s['rows']:,} rows in {s['seconds']:.1f} s"
                           for s in r["import"]["stages"])
        print(f"{r['rows']:,} rows, stages: {stages or 'none'}")
        imp = r["import"]
        if "server_cpu_s" in imp:
            line = (f"  CPU: relocate {imp['cpu_s']:.1f} s + server {imp['server_cpu_s']:.1f} s")
            if "load_server_cpu_s" in r.get("copy", {}):
                c = r["copy"]
                line += (f"; COPY load: server {c['load_server_cpu_s']:.1f} s + client "
                         f"{c['load_client_cpu_s']:.1f} s; relocate / COPY "
                         f"x{r['ratios'].get('relocate_cpu_vs_copy_load_cpu', '-')}")
            print(line)
        if r["import"]["exit_code"]:
            print(f"  import exit status {r['import']['exit_code']} (see log_tail in the JSON)")
    for s in report["scaling"]:
        print(f"{s['from_rows']:,} -> {s['to_rows']:,} rows (x{s['rows_ratio']}): time "
              f"x{s['seconds_ratio']}, rows/s x{s['rows_per_s_ratio']}, peak RSS "
              f"x{s['peak_rss_ratio']}, tree RSS x{s['peak_tree_rss_ratio']}")


@contextmanager
def throwaway_cluster(base: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(base / "pg", durable=False)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.stop(mode="immediate")


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated row counts, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("row counts must be positive")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=_sizes, default=[100_000, 1_000_000],
                        help="comma-separated export sizes (default 100000,1000000)")
    parser.add_argument("--with-10m", action="store_true", help="also 10,000,000 rows")
    parser.add_argument("--scope", choices=IMPORT_SCOPES, default="organizations",
                        help="the import scope (default organizations)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latest.json"))
    parser.add_argument("--no-anchors", action="store_true",
                        help="only the relocate import (no COPY or pg_restore)")
    parser.add_argument("--workdir", type=Path,
                        help="scratch directory (default: a new one under /tmp)")
    parser.add_argument("--import-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for `relocate import`, repeatable, e.g. "
                             "--import-arg=--direct_running_mode=multi_processing")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.rows + ([10_000_000] if args.with_10m else [])))

    # Not under a 0700 home: the cluster directory must be reachable by the server user.
    base = Path(tempfile.mkdtemp(prefix="relocate-bench-", dir=args.workdir or "/tmp"))
    os.chmod(base, 0o755)
    workdir = base / "work"
    workdir.mkdir()
    settings = Settings(args.scope, args.seed, workdir, args.import_arg, not args.no_anchors)
    try:
        with throwaway_cluster(base) as cluster:
            results = [bench_one(n, cluster, settings) for n in sizes]
            report = {
                "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None
                                                               else sys.argv[1:])]),
                "scope": args.scope,
                "seed": args.seed,
                "machine": _machine(cluster),
                "results": results,
                "scaling": scaling(results),
                "harness_peak_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
    finally:
        shutil.rmtree(base, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"Wrote {args.out}")
    return 0 if all(r["import"]["exit_code"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
