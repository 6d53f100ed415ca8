"""``CheckConstraints``: the target's CHECK and unique constraints over the whole export.

Thin over ``relocate.db.constraints``: one DoFn stages each converted batch's constrained
columns in the run's staging tables (a batch at a time, so nothing accumulates), then one
step, once every batch is staged, asks PostgreSQL for the rows that break a constraint
and drops the staging tables. Its findings join the validation findings, so they hold
back every write (gate 0).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from relocate.beam.gate import trigger
from relocate.beam.write import _PostgresFn, connect
from relocate.db.constraints import ModelConstraints, drop_staging, find_violations, stage_rows
from relocate.db.handler import Finding
from relocate.logic.convert import PackedBatch
from relocate.logic.settings import ImportSettings

FINDINGS = "findings"

log = logging.getLogger("relocate.constraints")


@dataclass(eq=False)
class _StageFn(_PostgresFn):
    _settings: ImportSettings
    _plans: dict[str, ModelConstraints]

    def __post_init__(self) -> None:
        super().__init__()

    def setup(self) -> None:
        super().setup()
        self._created: set[str] = set()

    def process(self, batch: PackedBatch) -> Iterator[Any]:
        plan = self._plans.get(batch[0])
        if plan is None:
            return
        staged, findings = stage_rows(self.connection(), plan, batch, self._created)
        for finding in findings:
            yield beam.pvalue.TaggedOutput(FINDINGS, finding)
        yield staged

    def finish_bundle(self) -> None:
        self.release_connection()


class _ViolationsFn(beam.DoFn):
    """Once every batch is staged: the rows that break a constraint; then cleans up."""

    def __init__(self, settings: ImportSettings, plans: dict[str, ModelConstraints]) -> None:
        self._settings = settings
        self._plans = plans

    def process(self, _: Any, *staged_counts: Iterable[int]) -> Iterator[Finding]:
        staged = sum(sum(part) for part in staged_counts)
        if not staged:
            return
        start = time.monotonic()
        found = 0
        # The staging tables stay until the findings are counted (``_DropStagingFn``): a
        # retried attempt of this step must find them again.
        with connect(self._settings) as conn:
            for plan in self._plans.values():
                for finding in find_violations(conn, plan):
                    found += 1
                    yield finding
        log.info(
            "constraints: %d staged rows checked in %.1f s, %d violations",
            staged,
            time.monotonic() - start,
            found,
        )


class _DropStagingFn(beam.DoFn):
    """Drops the run's staging tables once the violations are out (idempotent)."""

    def __init__(self, settings: ImportSettings, plans: dict[str, ModelConstraints]) -> None:
        self._settings = settings
        self._plans = plans

    def process(self, _: Any, violations: Iterable[Any]) -> Iterator[Any]:
        del violations  # only waited for
        with connect(self._settings) as conn:
            drop_staging(conn, self._plans.values())
        return iter(())


@dataclass(eq=False)
class CheckConstraints(beam.PTransform):
    """Converted batches in (a tuple of PCollections), ValidationError findings out.

    Each input is staged by a step of its own, fused with the step that converted it: a
    Flatten first would make the local runner hold a second copy of every converted row.
    """

    settings: ImportSettings
    plans: dict[str, ModelConstraints]

    def __post_init__(self) -> None:
        super().__init__()

    def expand(self, parts: tuple[beam.PCollection, ...]) -> beam.PCollection:
        counts, findings = [], []
        for index, batches in enumerate(parts):
            staged = batches | f"Stage{index}" >> beam.ParDo(
                _StageFn(self.settings, self.plans)
            ).with_outputs(FINDINGS, main="staged")
            counts.append(staged.staged)
            findings.append(staged[FINDINGS])
        pipeline = parts[0].pipeline
        # Side inputs one by one: a Flatten read as a side input is a stage of its own.
        violations = trigger(pipeline, "Trigger") | "Violations" >> beam.ParDo(
            _ViolationsFn(self.settings, self.plans), *map(beam.pvalue.AsIter, counts)
        )
        _ = trigger(pipeline, "DropTrigger") | "DropStaging" >> beam.ParDo(
            _DropStagingFn(self.settings, self.plans), beam.pvalue.AsIter(violations)
        )
        return (*findings, violations) | "Findings" >> beam.Flatten()
