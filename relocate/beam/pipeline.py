"""The import pipeline: read -> admit -> convert -> stage -> stage 1..N writes -> finish.

::

    rows      = ReadExport(src)                       # streamed rows, per-model ordinals
    filters   = ResolveFilters(rows)                  # org/user allow-lists, a side input
    admitted  = AdmitRows(rows, filters)              # scope and filters; skips reported
    converted = ConvertRows(admitted)                 # columns, types, Sentry validation
    held, violations = StageConverted(converted)      # CHECKs, keys repeated in the file;
                                                      # batches held in the target
    gate[0]   = findings + violations                 # any finding: nothing is written
    gate[k]   = gate[k-1] + WriteStage(k, held batches of stage k, gate[k-1])  # failures
    Finish(gate[N])                                   # sequences, chunk records

Rows cross Beam in batches of one model, ``(model, [row tuple, ...])``: Beam's cost is per
element, so a batch pays it once for hundreds of rows. Rows are plain tuples (``Row`` and
``Converted`` are NamedTuples in the plain code): Beam's fast coder handles a tuple ~3x
faster than a NamedTuple subclass.

Stages come from the registry, so the graph is fixed before any row is read. Each stage
waits for the gate of the one before it (a side input is complete only when its producer
is done), and resolves its foreign keys against the pk-map ledger that earlier stages
filled: rows may come in any order in the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam

from relocate.beam.admit import (
    FINDINGS,
    SKIPPED,
    AdmitRows,
    ConvertRows,
    ResolveFilters,
    bad_row_finding,
)
from relocate.beam.constraints import StageConverted
from relocate.beam.gate import any_failed, trigger, wait_for
from relocate.beam.read import BAD, USERNAMES, ReadExport, rows_of
from relocate.beam.write import WriteReports, WriteStage, connect
from relocate.db.constraints import ModelConstraints
from relocate.io.export_reader import Row
from relocate.logic.admission import (
    LEGACY_OWNER_FIELDS,
    actor_owner,
    has_legacy_owner,
    has_natural_user_refs,
    user_fk_fields,
)
from relocate.logic.convert import TableLayout
from relocate.logic.settings import ImportSettings
from relocate.schemas.registry import Registry


@dataclass(frozen=True)
class ImportOutputs:
    """Files a detached import's pipeline writes when it concludes (None: not written).

    Attributes:
        findings_file: where the findings go, Sentry's format (a path or a ``gs://`` URI).
        report_file: where the report of skipped, dropped and failed rows goes.
    """

    findings_file: str | None = None
    report_file: str | None = None


@dataclass(frozen=True)
class ImportPlan:
    """Everything the pipeline needs, fixed at launch. Picklable."""

    source: str
    settings: ImportSettings
    registry: Registry
    layouts: dict[str, TableLayout | None]
    removed_models: frozenset[str]
    decryption: Any | None = None
    #: Set for a detached import: the pipeline concludes it and writes these files.
    outputs: ImportOutputs | None = None
    #: model -> the target's CHECK and unique constraints checked before any write.
    constraints: dict[str, ModelConstraints] = field(default_factory=dict)
    #: Readers that share the work before the first write (``ReadExport``).
    read_shards: int = 1


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

    def process(self, _: Any, *gate: Iterable[Any]) -> Iterator[Any]:
        """Wipes unless the gate holds a failure; adds nothing to the gate."""
        if not any_failed(gate):
            from relocate.db.wipe import wipe_for_import

            with connect(self._plan.settings) as conn:
                wipe_for_import(conn, self._plan.registry, self._plan.settings.import_uuid)
        return iter(())


class _FinishFn(beam.DoFn):
    def __init__(self, plan: ImportPlan) -> None:
        self._plan = plan

    def process(self, _: Any, reports: Iterable[int], *gate: Iterable[Any]) -> Iterator[int]:
        """Yields 1 when the import failed, else finishes it and yields 0 (one element
        either way: a detached import's conclusion runs on it)."""
        del reports  # only waited for
        from relocate.db.finish import finish_import
        from relocate.db.held import drop_held

        settings = self._plan.settings
        with connect(settings) as conn:
            drop_held(conn, settings.run_id)  # every stage has written
            if any_failed(gate):
                yield 1
                return
            # A second connection writes chunk records beside the first (the writers are
            # done; only a cap of one connection keeps it to one).
            cap = settings.max_db_connections
            with connect(settings) if cap is None or cap > 1 else nullcontext() as helper:
                helpers = [helper] if helper is not None else []
                finish_import(conn, settings, self._plan.registry, helpers)
        yield 0


class _ConcludeFn(beam.DoFn):
    """A detached import's last step: records the outcome, writes the files."""

    def __init__(self, plan: ImportPlan) -> None:
        self._plan = plan

    def process(self, _: Any) -> Iterator[int]:
        from relocate.db.finish import conclude_import
        from relocate.io.outputs import open_output, write_findings, write_report

        settings, outputs = self._plan.settings, self._plan.outputs
        assert outputs is not None
        with connect(settings) as conn:
            summary = conclude_import(conn, settings)
        if outputs.findings_file:
            with open_output(outputs.findings_file) as f:
                write_findings(f, summary.findings)
        if outputs.report_file:
            with open_output(outputs.report_file) as f:
                write_report(f, settings.import_uuid, summary.report)
        yield len(summary.findings)


def needs_export_lookups(
    batch: tuple[str, list[tuple]], user_fields: dict[str, tuple[str, ...]]
) -> bool:
    """Whether a batch must wait for lookups over the whole export: a batch with a row
    that names its owner by legacy actor (the actors), or a user by natural key (the
    usernames of the export's users). Exports since Sentry 23.9 have neither."""
    model, elements = batch
    fields = user_fields.get(model)
    if not fields and model not in LEGACY_OWNER_FIELDS:
        return False  # no field of this model can name a legacy owner or a user
    for element in elements:
        row = Row._make(element)
        if has_legacy_owner(row) or (fields and has_natural_user_refs(row.fields, fields)):
            return True
    return False


def build(pipeline: beam.Pipeline, plan: ImportPlan) -> beam.PCollection:
    """Adds the import to ``pipeline``; returns a PCollection with the final gate."""
    registry, settings = plan.registry, plan.settings
    user_fields = {m.name: user_fk_fields(m) for m in registry.models}
    read = pipeline | "Read" >> ReadExport(
        plan.source,
        plan.decryption,
        frozenset(m.name for m in registry.models),
        settings,
        plan.read_shards,
        {model: fields for model, fields in user_fields.items() if fields},
    )
    actors = rows_of(read.rows, "sentry.actor", "Actors") | "ActorOwners" >> beam.Map(
        lambda r: (r[2], actor_owner(Row._make(r)))
    )
    # Only batches with a row that names a legacy owner wait for the actors, and only
    # batches of 23.7 exports that name users by natural key for the usernames of the
    # export's users (side inputs computed from the whole export). They take a path of
    # their own up to the stage writes: making every row wait would make the runner hold
    # every row of the export until the whole file is read (measured: +500 MB at 1M
    # rows). Their Admit resolves the owners and users, so that a reference of the wrong
    # shape is a finding like any other.
    # Pairs, not a map, and only for exports that name a user by natural key (the reader
    # spills them, ``UsernamePairs``): a side input of every export's pairs was most of
    # the runner's growth with the export. The Admit of a batch that needs them builds
    # the map (``first_pk_of_username``).
    usernames = read[USERNAMES]
    paths = read.rows | "NeedsLookups" >> beam.Partition(
        lambda batch, n: int(needs_export_lookups(batch, user_fields)), 2
    )
    filtered = settings.filter_usernames is not None or settings.filter_org_slugs is not None
    filters = (read.rows | "Filters" >> ResolveFilters(settings)) if filtered else None
    tables = {m.name: m.table for m in registry.models}
    stage_of = {m.name: m.stage - 1 for m in registry.models}
    n_stages = registry.max_stage
    stage_parts: list[list[beam.PCollection]] = [[] for _ in range(n_stages)]
    bad = read[BAD] | "BadRows" >> beam.Map(bad_row_finding)
    findings_parts, skipped_parts, converted_parts = [bad], [], []
    for prefix, rows, owners, names in (
        ("", paths[0], None, None),
        ("LookedUp", paths[1], actors, usernames),
    ):
        admit = rows | f"{prefix}Admit" >> AdmitRows(
            registry, settings, plan.removed_models, filters, owners, names
        )
        conv = admit.admitted | f"{prefix}Convert" >> ConvertRows(
            plan.layouts, settings, tables, {m.name: m.stage for m in registry.models}
        )
        findings_parts += [admit[FINDINGS], conv[FINDINGS]]
        skipped_parts += [admit[SKIPPED], conv[SKIPPED]]
        converted_parts.append(conv.converted)

    # Each converted batch goes to the target: what only the whole export shows (CHECK
    # constraints, keys repeated within the file) is checked before the gate, so a
    # finding still means nothing was written; the batch itself waits there for its
    # stage, and Beam carries a reference (relocate.db.held).
    staged = tuple(converted_parts) | "Constraints" >> StageConverted(settings, plan.constraints)
    findings_parts.append(staged.findings)
    for prefix, held in zip(("", "LookedUp"), staged.held, strict=True):
        by_stage = held | f"{prefix}ByStage" >> beam.Partition(
            lambda ref, n: stage_of[ref[0]], n_stages
        )
        for index in range(n_stages):
            stage_parts[index].append(by_stage[index])
    findings = tuple(findings_parts) | "AllFindings" >> beam.Flatten()
    reports = (
        (*skipped_parts, findings | "FindingEntries" >> beam.Map(_finding_entry))
        | "AllReports" >> beam.Flatten()
        | "Report" >> WriteReports(settings)
    )
    # The gate (relocate.beam.gate): the findings, then each stage's failed batches.
    gate: tuple[beam.PCollection, ...] = (findings,)
    if settings.is_global:
        wiped = trigger(pipeline, "WipeTrigger") | "Wipe" >> beam.ParDo(
            _WipeFn(plan), *wait_for(gate)
        )
        gate = (*gate, wiped)

    for index in range(n_stages):
        gate = (
            tuple(stage_parts[index])
            | f"Stage{index + 1}Rows" >> beam.Flatten()
            | f"Stage{index + 1}" >> WriteStage(index + 1, registry, settings, plan.layouts, gate)
        )

    finished = trigger(pipeline, "FinishTrigger") | "Finish" >> beam.ParDo(
        _FinishFn(plan), beam.pvalue.AsIter(reports), *wait_for(gate)
    )
    if plan.outputs is not None:
        return finished | "Conclude" >> beam.ParDo(_ConcludeFn(plan))
    return finished
