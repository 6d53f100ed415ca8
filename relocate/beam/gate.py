"""The import's gate: what holds every write back until the export has proved valid.

The gate is a tuple of PCollections of *failure markers*: the findings of the validation
pass, then the batches each stage failed to write. A step that must wait for it takes
each part as an ``AsIter`` side input, which is complete only once everything that feeds
it is done; an empty gate means "go on". Stage ``k`` adds its failures to the gate it
received, so the gate stage ``k + 1`` waits for holds the whole history, and a failure
anywhere stops every later write.

Side inputs are used as they come, neither combined nor flattened: on the local runner a
``CombineGlobally`` costs about eight transforms and a fused stage of its own, and a
Flatten read as a side input a stage of its own; each stage costs every import about
30 ms however few its rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam


def has_failed(part: Iterable[Any]) -> bool:
    """Whether a part of the gate holds a failure (reads at most one element)."""
    for _ in part:
        return True
    return False


def any_failed(gate: Iterable[Iterable[Any]]) -> bool:
    """Whether any part of the gate holds a failure."""
    return any(has_failed(part) for part in gate)


def wait_for(gate: tuple[beam.PCollection, ...]) -> list[Any]:
    """The gate as side inputs (positional: the DoFn takes them as ``*gate``)."""
    return [beam.pvalue.AsIter(part) for part in gate]


def trigger(pipeline: beam.Pipeline, label: str) -> beam.PCollection:
    """One element to start a step that only waits for side inputs."""
    return pipeline | label >> beam.Impulse()
