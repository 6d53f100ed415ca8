"""``relocate plan <scope> SRC``: what an import would do to the target, writing nothing.

The plan runs the real import (same flags, same pipeline, same rules) on a throwaway copy
of the part of the target an import reads and writes (``relocate.db.scratch``), reads the
outcome from that copy's ledger and report (``relocate.db.plan``) and deletes the copy.
The target is only read, in one read-only transaction.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from typing import Any, TextIO

from relocate.cli.common import (
    UsageError,
    check_output_flags,
    on_dataflow,
    parse_import_uuid,
    target_from_args,
)
from relocate.cli.summary import format_finding, print_skips, print_summary
from relocate.cli.terminal import terminal_safe

#: Rows listed per section on the terminal; the plan file has them all.
SHOWN = 20

TITLES = {
    "renamed": "Renamed",
    "merged": "Users merged into existing users",
    "configs": "Config rows kept or overwritten",
    "regenerated": "Keys, tokens and guids regenerated",
    "dropped": "Rows dropped",
}


def plan_command(args: argparse.Namespace, beam_args: list[str], out: TextIO, err: TextIO) -> int:
    """Runs ``relocate plan <scope>``; returns 1 when the import would have findings."""
    from relocate.cli.import_command import execute_import
    from relocate.cli.verify_command import decryption_from_args
    from relocate.db.scratch import scratch_copy
    from relocate.db.target import Target, connect
    from relocate.io.outputs import open_output, write_findings, write_report
    from relocate.schemas.registry import Registry

    say = (lambda *a: None) if args.silent else (lambda *a: print(*a, file=err, flush=True))
    if on_dataflow(beam_args) or any(a.startswith("--detach") for a in beam_args):
        raise UsageError(
            "relocate plan runs the import on a scratch copy of the target on this machine: "
            "it takes no --runner=DataflowRunner and no --detach"
        )
    check_output_flags(
        ("--findings-file", args.findings_file),
        ("--report-file", args.report_file),
        ("--plan-file", args.plan_file),
    )
    target = target_from_args(args)
    decryption = decryption_from_args(args)
    import_uuid = parse_import_uuid(args.import_uuid)
    registry = Registry.load()
    with ExitStack() as stack:
        if target is None:
            from relocate.db.embedded import embedded_target

            target = Target(stack.enter_context(embedded_target(err)))
        say(f"Plan of import {import_uuid}: nothing is written to the target.")
        # The bookkeeping rows of an import are copied only when it is named: a plan of a
        # resumed import must see what the earlier runs wrote.
        resumed = import_uuid if args.import_uuid else None
        scratch = stack.enter_context(scratch_copy(target, registry, resumed, say))
        summary, exit_code = execute_import(
            args, beam_args, Target(scratch.dsn), import_uuid, registry, decryption, say, err
        )
        conn = stack.enter_context(connect(Target(scratch.dsn)))
        if args.plan_file:
            from relocate.db.plan import write_plan

            with open_output(args.plan_file) as f:
                write_plan(f, conn, registry, summary, scope=args.scope, import_uuid=import_uuid)
        if args.findings_file:
            with open_output(args.findings_file) as f:
                write_findings(f, summary.findings)
        if args.report_file:
            with open_output(args.report_file) as f:
                write_report(f, import_uuid, summary.report)
        if not args.silent:
            print_plan(conn, registry, summary, import_uuid, err, bool(args.plan_file))
        for finding in summary.findings:
            print(format_finding(finding), file=err)
        if summary.findings:
            print(
                f"The import would fail with {len(summary.findings)} finding(s); nothing was "
                "written to the target.",
                file=err,
            )
    return exit_code


def print_plan(
    conn: Any, registry: Any, summary: Any, import_uuid: str, out: TextIO, has_file: bool
) -> None:
    """The per-model counts, then each section of the plan, at most ``SHOWN`` rows each."""
    from relocate.db.plan import SECTIONS, section

    print_summary(summary, out)
    print_skips(summary, out)  # skipped and dropped rows, counted by reason
    for name in SECTIONS:
        n = 0
        for entry in section(conn, registry, summary, import_uuid, name):
            if name == "dropped" and entry["action"] != "dropped":
                continue  # skipped by scope or filter: counted above, listed in the file
            if n == 0:
                print(f"{TITLES[name]}:", file=out)
            if n < SHOWN:
                print(f"  {terminal_safe(describe(name, entry))}", file=out)
            n += 1
        if n > SHOWN:
            where = "see --plan-file" if has_file else "--plan-file lists them all"
            print(f"  ... and {n - SHOWN:,} more; {where}", file=out)


def describe(name: str, e: dict[str, Any]) -> str:
    """One row of a plan section as a line of text (export text not yet escaped)."""
    row = f"{e.get('model', 'sentry.user')} pk {e['source_pk']}"
    if name == "renamed":
        text = f"{row}: {e['field']} {e.get('from')!r} -> {e.get('to')!r} ({e['reason']}"
        owner = e.get("collides_with")
        if owner:
            text += "; collides with " + ", ".join(f"{k} {v!r}" for k, v in owner.items())
        return text + ")"
    if name == "merged":
        return f"{row} -> existing user {e['into_user_id']} {e['into_username']!r}"
    if name == "configs":
        key = ", ".join(f"{k}={v!r}" for k, v in e["key"].items())
        return f"{row}: {e['outcome']} (target row {e['target_id']}, {key})"
    if name == "regenerated":
        return f"{row}: {e['field']} ({e['reason']})"
    return f"{row}: {e['action']}: {e['reason']}"
