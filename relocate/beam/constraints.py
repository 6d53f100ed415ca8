"""``StageConverted``: converted batches go to the target, checked and held there.

Thin over ``relocate.db.constraints``, ``relocate.db.held`` and ``relocate.db.stager``.
One DoFn, on one connection (one slot under ``--max-db-connections``) used by a thread of
its own (``BackgroundStager``: the next batch is converted while the server takes the
last), takes each converted batch:

* its constrained columns go into the run's staging tables. Once every batch is staged,
  one step asks PostgreSQL for the rows that break the target's CHECK and unique
  constraints, and drops the staging tables. These findings join the validation findings,
  so they hold back every write (gate 0);
* the whole batch goes into the run's held table, and a ``(model, id)`` reference takes
  its place in Beam: the rows wait for their stage in the target, not in the runner's
  memory.

At most two batches wait for the thread, so nothing accumulates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from relocate.beam.gate import trigger
from relocate.beam.write import _PostgresFn, connect
from relocate.db.constraints import ModelConstraints, drop_staging, find_violations
from relocate.db.handler import Finding
from relocate.db.stager import FINDING, HELD, BackgroundStager
from relocate.db.stager import STAGED as STAGED_ROWS
from relocate.logic.convert import PackedBatch
from relocate.logic.settings import ImportSettings

FINDINGS = "findings"
STAGED = "staged"
#: The stager's result kinds -> this step's output tags.
_TAGS = {FINDING: FINDINGS, STAGED_ROWS: STAGED}

log = logging.getLogger("relocate.constraints")


@dataclass(eq=False)
class _StageFn(_PostgresFn):
    _settings: ImportSettings
    _plans: dict[str, ModelConstraints]

    def __post_init__(self) -> None:
        super().__init__()

    def setup(self) -> None:
        super().setup()
        # One per DoFn instance: it keeps the staging tables it knows to exist.
        self._stager = BackgroundStager(self.connection, self._settings.run_id, self._plans)

    def start_bundle(self) -> None:
        self._stager.close()  # a thread left by a bundle that failed

    def process(self, batch: PackedBatch) -> Iterator[Any]:
        for tag, value in self._stager.put(batch):
            yield value if tag == HELD else beam.pvalue.TaggedOutput(_TAGS[tag], value)

    def finish_bundle(self) -> Iterator[Any]:
        for tag, value in self._stager.finish():
            windowed = GlobalWindows.windowed_value(value)
            yield windowed if tag == HELD else beam.pvalue.TaggedOutput(_TAGS[tag], windowed)
        self.release_connection()

    def teardown(self) -> None:
        self._stager.close()
        super().teardown()


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


class StagedBatches(NamedTuple):
    """What ``StageConverted`` returns."""

    #: Per input: ``(model, id)`` references to the held batches (``relocate.db.held``).
    held: tuple[beam.PCollection, ...]
    #: The rows that break a constraint, and the values the columns' types reject.
    findings: beam.PCollection


@dataclass(eq=False)
class StageConverted(beam.PTransform):
    """Converted batches in (a tuple of PCollections); held references and findings out.

    Each input is staged by a step of its own, fused with the step that converted it: a
    Flatten first would make the local runner hold a second copy of every converted row.
    """

    settings: ImportSettings
    plans: dict[str, ModelConstraints]

    def __post_init__(self) -> None:
        super().__init__()

    def expand(self, parts: tuple[beam.PCollection, ...]) -> StagedBatches:  # type: ignore[override]
        held, counts, findings = [], [], []
        for index, batches in enumerate(parts):
            staged = batches | f"Stage{index}" >> beam.ParDo(
                _StageFn(self.settings, self.plans)
            ).with_outputs(FINDINGS, STAGED, main="held")
            held.append(staged.held)
            counts.append(staged[STAGED])
            findings.append(staged[FINDINGS])
        if self.plans:
            pipeline = parts[0].pipeline
            # Side inputs one by one: a Flatten read as a side input is a stage of its own.
            violations = trigger(pipeline, "Trigger") | "Violations" >> beam.ParDo(
                _ViolationsFn(self.settings, self.plans), *map(beam.pvalue.AsIter, counts)
            )
            _ = trigger(pipeline, "DropTrigger") | "DropStaging" >> beam.ParDo(
                _DropStagingFn(self.settings, self.plans), beam.pvalue.AsIter(violations)
            )
            findings.append(violations)
        return StagedBatches(tuple(held), tuple(findings) | "Findings" >> beam.Flatten())
