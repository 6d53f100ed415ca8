"""Deliberate faults for reliability tests (hidden ``--inject-fault POINT:MODEL:BATCH:MARKER``).

A fault fires once: the first writer to reach the given batch of the given model creates
the marker file (atomically) and fails there; every later attempt finds the marker and
goes on. Points:

* ``in-transaction``: the batch fails after its rows are written, before the commit;
* ``after-commit``: the batch commits, then fails before its result is emitted;
* ``drop-connection``: the database connection dies inside the batch's transaction.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

POINTS = ("in-transaction", "after-commit", "drop-connection")


class InjectedFault(RuntimeError):
    """The failure a fault plan asked for."""


@dataclass(frozen=True)
class FaultPlan:
    point: str
    model: str
    batch: int
    marker: str

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        try:
            point, model, batch, marker = text.split(":", 3)
            plan = cls(point, model, int(batch), marker)
        except ValueError:
            raise ValueError(
                f"--inject-fault wants POINT:MODEL:BATCH:MARKER, got {text!r}"
            ) from None
        if plan.point not in POINTS:
            raise ValueError(f"unknown fault point {plan.point!r}; one of {', '.join(POINTS)}")
        return plan

    def fires(self, point: str, model: str, batch: int) -> bool:
        """Whether to fail here; true at most once across all processes."""
        if (point, model, batch) != (self.point, self.model, self.batch):
            return False
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True
