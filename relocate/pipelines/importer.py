"""The import pipeline: read -> admit -> convert -> stage 1..N writes -> finish.

::

    rows      = ReadExport(src)                       # ijson stream, per-model ordinals
    filters   = ResolveFilters(rows)                  # org/user allow-lists, a side input
    admitted  = AdmitRows(rows, filters)              # scope and filters; skips reported
    converted = ConvertRows(admitted)                 # columns, types, Sentry validation
    gate[0]   = count(findings)                       # any finding: nothing is written
    gate[k]   = WriteStage(k, rows of stage k, gate[k-1])
    Finish(gate[N])                                   # sequences, chunk records

Elements cross Beam as plain tuples (``Row`` and ``Converted`` are NamedTuples in the plain
code): Beam's fast coder handles a tuple ~3x faster than a NamedTuple subclass.

Stages come from the registry, so the graph is fixed before any row is read. Each stage
waits for the gate of the one before it (a side input is complete only when its producer
is done), and resolves its foreign keys against the pk-map ledger that earlier stages
filled: rows may come in any order in the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from relocate.admission import actor_owner, resolve_legacy_owner
from relocate.convert import TableLayout
from relocate.io.export_reader import Row
from relocate.schemas.registry import Registry
from relocate.settings import ImportSettings
from relocate.transforms.admit import (
    FINDINGS,
    SKIPPED,
    AdmitRows,
    ConvertRows,
    ResolveFilters,
    bad_row_finding,
)
from relocate.transforms.read import BAD, ReadExport
from relocate.transforms.write import WriteReports, WriteStage, connect


@dataclass(frozen=True)
class ImportPlan:
    """Everything the pipeline needs, fixed at launch. Picklable."""

    source: str
    settings: ImportSettings
    registry: Registry
    layouts: dict[str, TableLayout | None]
    removed_models: frozenset[str]
    decryption: Any | None = None


def _finding_entry(finding: Any) -> tuple:
    return (
        finding.model,
        finding.ordinal or 0,
        finding.left_pk,
        "error",
        finding.reason,
        finding.kind,
    )


class _WipeFn(beam.DoFn):
    """Sentry's Global wipe, once the export has been read and validated."""

    def __init__(self, plan: ImportPlan) -> None:
        self._plan = plan

    def process(self, _: Any, gate: int) -> Iterator[int]:
        if not gate:
            from relocate.wipe import wipe_for_import

            with connect(self._plan.settings) as conn:
                wipe_for_import(conn, self._plan.registry, self._plan.settings.import_uuid)
        yield gate


class _FinishFn(beam.DoFn):
    def __init__(self, plan: ImportPlan) -> None:
        self._plan = plan

    def process(self, _: Any, gate: int, reports: int) -> Iterator[int]:
        del reports  # only waited for
        if gate:
            yield gate
            return
        from relocate.finish import finish_import

        with connect(self._plan.settings) as conn:
            finish_import(conn, self._plan.settings, self._plan.registry)
        yield 0


def build(pipeline: beam.Pipeline, plan: ImportPlan) -> beam.PCollection:
    """Adds the import to ``pipeline``; returns a PCollection with the final gate."""
    registry, settings = plan.registry, plan.settings
    read = pipeline | "Read" >> ReadExport(
        plan.source, plan.decryption, frozenset(m.name for m in registry.models)
    )
    actors = (
        read.rows
        | "Actors" >> beam.Filter(lambda r: r[0] == "sentry.actor")
        | "ActorOwners" >> beam.Map(lambda r: (r[2], actor_owner(Row._make(r))))
    )
    rows = read.rows | "LegacyOwners" >> beam.Map(
        lambda r, actors: tuple(resolve_legacy_owner(Row._make(r), actors)),
        actors=beam.pvalue.AsDict(actors),
    )
    filters = rows | "Filters" >> ResolveFilters(settings)
    admit = rows | "Admit" >> AdmitRows(registry, settings, plan.removed_models, filters)
    tables = {m.name: m.table for m in registry.models}
    conv = admit.admitted | "Convert" >> ConvertRows(plan.layouts, settings, tables)

    findings = (
        read[BAD] | "BadRows" >> beam.Map(bad_row_finding),
        conv[FINDINGS],
    ) | "AllFindings" >> beam.Flatten()
    reports = (
        (
            admit[SKIPPED],
            conv[SKIPPED],
            findings | "FindingEntries" >> beam.Map(_finding_entry),
        )
        | "AllReports" >> beam.Flatten()
        | "Report" >> WriteReports(settings)
    )
    gate = findings | "CountFindings" >> beam.combiners.Count.Globally()
    if settings.is_global:
        gate = (
            pipeline
            | "WipeTrigger" >> beam.Create([None])
            | "Wipe" >> beam.ParDo(_WipeFn(plan), gate=beam.pvalue.AsSingleton(gate))
        )

    stage_of = {m.name: m.stage - 1 for m in registry.models}
    n_stages = registry.max_stage
    by_stage = conv.converted | "ByStage" >> beam.Partition(
        lambda row, n: stage_of[row[0]], n_stages
    )
    for index in range(n_stages):
        gate = by_stage[index] | f"Stage{index + 1}" >> WriteStage(
            index + 1, registry, settings, plan.layouts, gate
        )

    return (
        pipeline
        | "FinishTrigger" >> beam.Create([None])
        | "Finish"
        >> beam.ParDo(
            _FinishFn(plan),
            gate=beam.pvalue.AsSingleton(gate),
            reports=beam.pvalue.AsSingleton(reports, default_value=0),
        )
    )
