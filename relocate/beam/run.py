"""Runs one import end to end: prepare the target, run the pipeline, read the summary."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import apache_beam as beam
import psycopg

from relocate.beam.options import ImportOptions, parallel_local_run, quiet_worker_runner
from relocate.beam.pipeline import ImportOutputs, ImportPlan, build
from relocate.db.catalog import read_catalog
from relocate.db.constraints import plan_constraints
from relocate.db.ddl import field_map
from relocate.db.finish import ImportSummary, conclude_import
from relocate.db.held import create_held
from relocate.db.imports import holding_liveness, register_import, require_schema
from relocate.db.ledger import LEDGER_DDL
from relocate.db.run_tables import drop_dead_run_tables, drop_run_tables, holding_run
from relocate.db.target import connect
from relocate.db.username_index import ensure_lower_username_index
from relocate.io.digest import source_digest
from relocate.io.outputs import has_scheme
from relocate.logic.convert import build_layouts
from relocate.logic.settings import ImportSettings
from relocate.schemas.registry import Registry
from relocate.schemas.removed import REMOVED_MODELS
from relocate.schemas.shipped import ShippedDict


def prepare_target(
    settings: ImportSettings,
    registry: Registry,
    *,
    source: str | None = None,
    detached: bool = False,
) -> Any:
    """Checks the target and records the import (the Global wipe is a pipeline step: it
    runs only once the whole export has been read and validated).

    In this order, so that a refusal changes nothing: the target must have the core tables
    of the scope (before the export is read or relocate's tables are created); the
    export's digest is taken; relocate's tables are created; the import is recorded, or
    resumed if its UUID is bound to the same scope, flags and export (a Global import is
    refused while other imports run).

    Args:
        settings: the import.
        registry: the model registry.
        source: the export (its digest binds the import UUID); None: not bound to one.
        detached: the launching process will not wait for the import (``--detach``).

    Returns:
        The target's catalog.

    Raises:
        SchemaMissing: the target lacks the scope's core tables.
        ImportConflict: see ``relocate.db.imports.register_import``.
    """
    with connect(settings) as conn:
        require_schema(conn, settings.scope)
        digest = source_digest(source) if source is not None else None
        for statement in LEDGER_DDL:
            conn.execute(statement)
        conn.commit()
        ensure_lower_username_index(conn)
        catalog = read_catalog(conn)
        conn.commit()
        register_import(conn, settings, source_digest=digest, detached=detached)
        drop_dead_run_tables(conn)  # what killed runs left
        create_held(conn, settings.run_id, settings.import_uuid)
    return catalog


def build_pipeline(
    source: str,
    settings: ImportSettings,
    beam_args: list[str] | None = None,
    *,
    decryption: Any | None = None,
    registry: Registry | None = None,
    outputs: ImportOutputs | None = None,
) -> beam.Pipeline:
    """Prepares the target and builds (without running) the import's pipeline.

    What it returns is what a runner receives: pipeline options and pickled DoFns, which
    hold the names of any secrets, never their values.
    """
    from relocate.logic.rules import build_handlers

    registry = registry or Registry.load()
    catalog = prepare_target(settings, registry, source=source, detached=outputs is not None)
    args, read_shards = parallel_local_run(list(beam_args or []), _local_size(source))
    # Shipped: pickled once for all the DoFns that carry them (relocate.schemas.shipped).
    layouts = ShippedDict(build_layouts(registry, field_map(), catalog))
    plan = ImportPlan(
        source=source,
        settings=settings,
        registry=registry,
        layouts=layouts,
        removed_models=REMOVED_MODELS,
        decryption=decryption,
        outputs=outputs,
        constraints=ShippedDict(
            plan_constraints(catalog, layouts, build_handlers(), settings.run_id)
        ),
        read_shards=read_shards,
    )
    runner, args = quiet_worker_runner(args)
    if runner is None and not any(a.startswith("--runner") for a in args):
        args.insert(0, "--runner=FnApiRunner")
    pipeline = beam.Pipeline(runner=runner, options=ImportOptions(args))
    build(pipeline, plan)
    return pipeline


def _local_size(source: str) -> int | None:
    """The size of a local export file; None for ``-``, ``gs://`` and the like."""
    if source == "-" or has_scheme(source):
        return None
    try:
        return os.path.getsize(source)
    except OSError:
        return None


def run_import(
    source: str,
    settings: ImportSettings,
    beam_args: list[str] | None = None,
    *,
    decryption: Any | None = None,
    registry: Registry | None = None,
    outputs: ImportOutputs | None = None,
) -> ImportSummary | None:
    """Imports ``source`` into the target of ``settings``; returns what the import did.

    With ``outputs`` the import is *detached*: the pipeline is submitted and not waited
    for; its last step records the outcome and writes the findings and report files
    (what a Dataflow Flex Template launcher needs: it must exit once the job is
    submitted). Nothing is returned then.

    Args:
        source: a local path, a ``gs://`` URI, or ``-`` for standard input.
        settings: scope, flags and identity of the import.
        beam_args: Beam pipeline options (default: the local FnApiRunner).
        decryption: how to decrypt an encrypted export (``relocate.io.crypto``).
        registry: the model registry (default: the packaged one).
        outputs: detach, and let the pipeline write these files.
    """
    # The launcher holds the import's liveness lock while it runs: a Global import's
    # wipe refuses while it is held (relocate.db.imports). It is taken before the import
    # is recorded, so a recorded import that runs always holds it.
    with (
        connect(settings, autocommit=True, application_name="relocate") as live,
        holding_liveness(live, settings.import_uuid),
        holding_run(live, settings.run_id),
    ):
        pipeline = build_pipeline(
            source, settings, beam_args, decryption=decryption, registry=registry, outputs=outputs
        )
        try:
            with _quiet_after_interrupt():
                result = pipeline.run()
            if outputs is not None:
                return None  # detached: submitted (a local runner has run it already)
            result.wait_until_finish()
        except BaseException:
            _set_status(settings, "failed")
            _drop_run_tables(settings)
            raise
        with connect(settings) as conn:
            return conclude_import(conn, settings, read_counts(result))


@contextmanager
def _quiet_after_interrupt() -> Iterator[None]:
    """Ctrl-C stops the run as usual (KeyboardInterrupt), and from then on the runner's
    threads, whose worker processes end with it, neither print their tracebacks nor log:
    the CLI says what became of the import in one line."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    hook, level = threading.excepthook, logging.root.manager.disable

    def interrupted(signum: int, frame: Any) -> None:
        threading.excepthook = lambda args: None
        logging.disable(logging.CRITICAL)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        # The runner has stopped its workers and joined their threads by now.
        signal.signal(signal.SIGINT, previous)
        threading.excepthook = hook
        logging.disable(level)


def _set_status(settings: ImportSettings, status: str) -> None:
    try:
        with connect(settings) as conn:
            conn.execute(
                "UPDATE relocate_import SET status = %s, finished_at = now() "
                "WHERE import_uuid = %s",
                (status, settings.import_uuid),
            )
    except psycopg.Error:
        pass  # the database may be what failed; the import stays 'running' then


def _drop_run_tables(settings: ImportSettings) -> None:
    """Drops the scratch tables of a run whose pipeline failed (relocate.db.run_tables)."""
    try:
        with connect(settings) as conn:
            drop_run_tables(conn, settings.run_id)
    except psycopg.Error:
        pass  # the database may be what failed; the tables are UNLOGGED scratch then


def read_counts(result: Any) -> dict[str, int]:
    """Rows read per model, from the pipeline's metrics."""
    from apache_beam.metrics.metric import MetricsFilter

    counts: dict[str, int] = {}
    try:
        query = result.metrics().query(MetricsFilter().with_namespace("relocate.read"))
    except Exception:  # noqa: BLE001 - a runner without metrics: no read column
        return counts
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        name = counter.key.metric.name
        counts[name] = counts.get(name, 0) + (value or 0)
    return counts
