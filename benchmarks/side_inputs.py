"""How a stage could resolve foreign keys: Beam side inputs against the ledger.

Measures, on the local FnApiRunner and a throwaway PostgreSQL cluster, for a map of N
old pk -> new pk entries:

* ``AsDict``: what one bundle pays to materialise the whole map (seconds; bytes per entry
  held, and at the peak of the build, from ``tracemalloc``). Beam builds it again in
  every bundle that reads it and holds it once per SDK worker process.
* ``AsMultiMap``: seconds per key looked up. Beam first reads the keys and values in bulk;
  past 100 keys it stops and asks the runner for each key (a state-API round trip, over
  gRPC on Dataflow: the local runner answers in-process, so this is a lower bound).
* the ledger: seconds per key of relocate's lookup (one query per batch of 500 keys
  joined to ``relocate_pk_map``, the query of ``relocate.db.sink.load_lookup``).

Usage::

    .venv/bin/python benchmarks/side_inputs.py --entries 100000,1000000 --lookups 5000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import apache_beam as beam
import psycopg
from apache_beam.options.pipeline_options import PipelineOptions
from run import throwaway_cluster  # benchmarks/run.py, beside this script

from relocate.db.ledger import LEDGER_DDL
from relocate.db.sink import load_lookup

BATCH = 500


class _DictFn(beam.DoFn):
    """Yields what the AsDict view of its one bundle cost: Beam builds the view when it
    resolves ``process``'s arguments, so the cost lies between ``start_bundle`` and
    ``process``."""

    def __init__(self, traced: bool) -> None:
        self._traced = traced

    def start_bundle(self) -> None:
        if self._traced:
            tracemalloc.start()
        self._start = time.perf_counter()

    def process(self, _: Any, side: Any) -> Any:
        seconds = time.perf_counter() - self._start
        used = (0, 0)
        if self._traced:
            used = tracemalloc.get_traced_memory()  # (held now, peak)
            tracemalloc.stop()
        yield (seconds, used, len(side))


class _MultiMapFn(beam.DoFn):
    def __init__(self, keys: list[int]) -> None:
        self._keys = keys

    def process(self, _: Any, side: Any) -> Any:
        start = time.perf_counter()
        found = sum(1 for k in self._keys if list(side[k]))
        yield (time.perf_counter() - start, found)


def _save(value: Any, path: str) -> None:
    Path(path).write_text(json.dumps(value))


def _run(entries: int, fn: beam.DoFn, side: Any) -> Any:
    """Runs ``fn`` once with the map as ``side``; returns what it yielded (the DoFns run
    on pickled copies, so the result comes back through a file)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
            pairs = p | "Pairs" >> beam.Create([(i, i + 10**9) for i in range(entries)])
            (
                p
                | "One" >> beam.Create([None])
                | beam.ParDo(fn, side(pairs))
                | beam.Map(_save, out.name)
            )
        return json.loads(Path(out.name).read_text())


def as_dict(entries: int) -> dict[str, float]:
    seconds, _, size = _run(entries, _DictFn(traced=False), beam.pvalue.AsDict)
    _, used, _ = _run(entries, _DictFn(traced=True), beam.pvalue.AsDict)
    assert size == entries
    return {
        "build_seconds": round(seconds, 3),
        "bytes_per_entry": round(used[0] / entries, 1),
        "peak_bytes_per_entry": round(used[1] / entries, 1),
    }


def as_multimap(entries: int, lookups: int) -> dict[str, float]:
    keys = random.Random(0).sample(range(entries), min(lookups, entries))
    seconds, found = _run(entries, _MultiMapFn(keys), beam.pvalue.AsMultiMap)
    assert found == len(keys)
    return {"us_per_lookup": round(seconds / len(keys) * 1e6, 1)}


def ledger(dsn: str, entries: int, lookups: int) -> dict[str, float]:
    import_uuid = uuid.uuid4().hex
    with psycopg.connect(dsn) as conn:
        for statement in LEDGER_DDL:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO relocate_pk_map (import_uuid, model, old_pk, new_pk, kind, ordinal, "
            "stage) SELECT %s, 'sentry.user', i, i + 1000000000, 'Inserted', i, 1 "
            "FROM generate_series(0, %s - 1) AS i",
            (import_uuid, entries),
        )
        conn.execute("ANALYZE relocate_pk_map")
        conn.commit()
        keys = random.Random(0).sample(range(entries), min(lookups, entries))
        start = time.perf_counter()
        found = 0
        with conn.cursor() as cur:
            for at in range(0, len(keys), BATCH):
                refs = {("sentry.user", k) for k in keys[at : at + BATCH]}
                found += len(load_lookup(cur, import_uuid, refs))
        seconds = time.perf_counter() - start
        conn.execute("DELETE FROM relocate_pk_map WHERE import_uuid = %s", (import_uuid,))
        conn.commit()
    assert found == len(keys)
    return {"us_per_lookup": round(seconds / len(keys) * 1e6, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", default="100000,1000000")
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    # Not under a 0700 home: the cluster directory must be reachable by the server user.
    base = Path(tempfile.mkdtemp(prefix="relocate-side-inputs-", dir="/tmp"))
    os.chmod(base, 0o755)
    report: dict[str, Any] = {"lookups": args.lookups, "batch": BATCH, "sizes": {}}
    try:
        with throwaway_cluster(base) as cluster:
            for entries in (int(n) for n in args.entries.split(",")):
                row = {
                    "as_dict": as_dict(entries),
                    "as_multimap": as_multimap(entries, args.lookups),
                    "ledger": ledger(cluster.dsn(), entries, args.lookups),
                }
                report["sizes"][entries] = row
                print(f"{entries:>11,} entries: {json.dumps(row)}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
