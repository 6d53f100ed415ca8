"""``relocate status --import-uuid U``: an import's state, read from the target.

What a Dataflow user polls: a running, detached or finished import's state, stage, rows
per stage, findings, and start and end times (``--json``: one JSON object).
"""

from __future__ import annotations

import argparse
import json
from contextlib import ExitStack
from datetime import datetime
from typing import TextIO

from relocate.cli.common import parse_import_uuid, target_from_args
from relocate.cli.progress import human_bytes
from relocate.db.status import ImportStatus


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def format_status(status: ImportStatus) -> list[str]:
    """The lines ``relocate status`` prints."""
    snap = status.progress
    state = status.state
    if state == "interrupted":
        state = (
            f"interrupted (its launcher is gone; resume with --import-uuid "
            f"{status.import_uuid}, or `relocate rollback --import-uuid {status.import_uuid}`)"
        )
    elif state == "running" and status.detached:
        state = "running (detached)"
    lines = [
        f"Import {status.import_uuid} ({status.scope})",
        f"state: {state}",
        f"stage: {status.stage}",
        f"started: {_when(status.started_at)}",
        f"finished: {_when(status.finished_at)}",
    ]
    if snap.run_id is not None:
        read = human_bytes(snap.bytes_read)
        if snap.export_bytes:
            read += f" of {human_bytes(snap.export_bytes)}"
        lines.append(
            f"read: {read}, {snap.rows_read:,} rows; validated: {snap.total_validated:,} rows"
        )
    for stage in sorted(set(snap.validated) | set(snap.written)):
        line = (
            f"stage {stage}: {snap.written.get(stage, 0):,} of "
            f"{snap.validated.get(stage, 0):,} rows written"
        )
        if snap.passed.get(stage):
            line += f" ({snap.passed[stage]:,} dropped or skipped)"
        lines.append(line)
    lines.append(
        f"findings: {status.findings:,}; skipped: {status.skipped:,}; dropped: {status.dropped:,}"
    )
    return lines


def status_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from relocate.db.status import read_status
    from relocate.db.target import Target, connect

    import_uuid = parse_import_uuid(args.import_uuid)
    target = target_from_args(args)
    with ExitStack() as stack:
        if target is None:
            from relocate.db.embedded import embedded_target

            target = Target(stack.enter_context(embedded_target(err)))
        with connect(target, application_name="relocate-status") as conn:
            status = read_status(conn, import_uuid)
    if status is None:
        print(f"Error: no import {import_uuid} in this database", file=err)
        return 1
    if args.json:
        print(json.dumps(status.as_json()), file=out)
    else:
        for line in format_status(status):
            print(line, file=out)
    return 0
