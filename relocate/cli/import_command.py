"""``relocate import <scope> SRC``: checks the flags, runs the pipeline, writes the outputs."""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from contextlib import ExitStack
from typing import Any, TextIO

from relocate.cli.common import (
    INTERRUPTED,
    UsageError,
    check_output_flags,
    interrupted_line,
    on_dataflow,
    parse_import_uuid,
    target_from_args,
    was_interrupted,
)
from relocate.cli.summary import (
    describe_failure,
    format_finding,
    print_followups,
    print_skips,
    print_summary,
    summary_line,
)
from relocate.cli.verify_command import decryption_from_args, run_verify

GLOBAL_PROMPT = (
    "Proceeding with this operation will irrecoverably delete all existing low-volume "
    "data - are you sure want to continue?"
)

INTEGRITY_HINTS = (
    "Are you restoring from a backup of the same version of Sentry?",
    "Are you restoring onto a clean database?",
    "If so then this IntegrityError might be our fault, you can open an issue here:",
    "https://github.com/getsentry/sentry/issues/new/choose",
)


def _usernames(args: argparse.Namespace) -> frozenset[str] | None:
    if args.filter_usernames and args.filter_usernames_file:
        raise UsageError(
            "`--filter-usernames` and `--filter-usernames-file` are mutually "
            "exclusive options - you may use one or the other, but not both."
        )
    if args.filter_usernames_file:
        with open(args.filter_usernames_file, encoding="utf-8") as f:
            text = f.read()
        # Sentry splits the whole file on commas, newlines included.
        return frozenset(text.split(","))
    if args.filter_usernames:
        return frozenset(args.filter_usernames.split(","))
    return None


def run_import(args: argparse.Namespace, beam_args: list[str], out: TextIO, err: TextIO) -> int:
    """Runs ``relocate import <scope>``; returns the exit status."""
    from relocate.io.outputs import open_output, write_findings, write_report
    from relocate.schemas.registry import Registry

    say = (lambda *a: None) if args.silent else (lambda *a: print(*a, file=err, flush=True))
    scope = args.scope
    check_output_flags(("--findings-file", args.findings_file), ("--report-file", args.report_file))
    # Sentry truncates the findings file before anything else happens (a gs:// one is
    # created empty); the report file is written only at the end.
    findings_file = (
        open_output(args.findings_file, truncate_now=True) if args.findings_file else None
    )
    try:
        if args.decrypt_with and args.decrypt_with_gcp_kms:
            raise UsageError(
                "`--decrypt-with` and `--decrypt-with-gcp-kms` are mutually "
                "exclusive options - you may use one or the other, but not both."
            )
        if args.src == "-" and args.detach:
            raise UsageError(
                "--detach cannot read the export from standard input (the job outlives "
                "this process): give a file or a gs:// URI"
            )
        if args.verify and (args.src == "-" or args.detach):
            raise UsageError(
                "--verify reads the export again once the import has ended: give a file "
                "or a gs:// URI, and do not --detach"
            )
        if args.src == "-" and scope == "global" and not args.no_prompt:
            raise UsageError(
                "reading the export from standard input needs --no-prompt "
                "(the confirmation prompt also reads standard input)"
            )
        target = target_from_args(args)
        if target is not None and on_dataflow(beam_args):
            from relocate.db.target import has_password

            # The DSN is pickled into the job, which Dataflow shows: refuse a password in it.
            if has_password(target.dsn):
                raise UsageError(
                    "--dsn carries a password, which Dataflow would store and show in "
                    "clear with the job: pass it with --db-password-secret (or the whole "
                    "DSN with --dsn-secret) instead"
                )
        if scope == "global" and not args.no_prompt:
            answer = _confirm(GLOBAL_PROMPT, err)
            if not answer:
                print("Import cancelled.", file=err)
                return 0
        decryption = decryption_from_args(args)
        import_uuid = parse_import_uuid(args.import_uuid)
        with ExitStack() as stack:
            if target is None:
                from relocate.db.embedded import embedded_target
                from relocate.db.target import Target

                target = Target(stack.enter_context(embedded_target(err)))
            say(f"Import UUID: {import_uuid}")
            registry = Registry.load()
            if args.detach and findings_file is not None:
                findings_file.close()  # truncated now; the job writes it when it ends
                findings_file = None
            start = time.monotonic()
            try:
                result = execute_import(
                    args, beam_args, target, import_uuid, registry, decryption, say, err
                )
            except BaseException as exc:  # Ctrl-C: say how to go on, not where Python was
                if not was_interrupted(exc):
                    raise
                print(interrupted_line(import_uuid), file=err, flush=True)
                return INTERRUPTED
            summary, exit_code = result
        if summary is None:  # detached
            say(
                f"Import {import_uuid} submitted. Its outcome is recorded in the target "
                "(SELECT status FROM relocate_import WHERE import_uuid = "
                f"'{import_uuid}': running, then done or failed); the job writes the "
                "findings and report files when it ends."
            )
            return exit_code
        if findings_file is not None:
            write_findings(findings_file, summary.findings)
        if args.report_file:
            with open_output(args.report_file) as f:
                write_report(f, import_uuid, summary.report)
        if summary.findings:
            for finding in summary.findings:
                print(format_finding(finding), file=err)
            if any(f["kind"] == "IntegrityError" for f in summary.findings):
                for hint in INTEGRITY_HINTS:
                    print(hint, file=err)
            print(
                describe_failure(summary, registry, import_uuid, args.scope == "global"), file=err
            )
        elif not args.silent:
            print_summary(summary, err)
            print_skips(summary, err)
            print_followups(summary, err)
        if not args.silent:
            seconds = time.monotonic() - start
            print(summary_line(summary, seconds, import_uuid, args.report_file), file=err)
        if args.verify and exit_code == 0:
            return run_verify(args, args.src, import_uuid, decryption, err, err)
        return exit_code
    finally:
        if findings_file is not None:
            findings_file.close()


def _confirm(prompt: str, err: TextIO) -> bool:
    print(f"{prompt} [y/N]: ", end="", file=err, flush=True)
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        return False
    return answer.strip().lower() in ("y", "yes")


def execute_import(
    args: argparse.Namespace,
    beam_args: list[str],
    target: Any,
    import_uuid: str,
    registry: Any,
    decryption: Any,
    say: Any,
    err: TextIO,
) -> tuple[Any, int]:
    """Builds the import's settings from the flags and runs its pipeline on ``target``
    (``relocate plan`` runs it on a scratch copy); returns the summary and exit status."""
    from relocate.beam.run import run_import as run_pipeline
    from relocate.cli.progress import watch_progress
    from relocate.logic.settings import ImportSettings

    scope = args.scope
    settings = ImportSettings(
        scope=scope,
        import_uuid=import_uuid,
        run_id=uuid.uuid4().hex,
        # Only the DSN given in clear and secret names: the values are read by whoever
        # connects (relocate.db.target), so they stay out of the pipeline.
        dsn=target.dsn,
        dsn_secret=target.dsn_secret,
        password_secret=target.password_secret,
        secret_endpoint=target.secret_endpoint,
        merge_users=getattr(args, "merge_users", False),
        overwrite_configs=getattr(args, "overwrite_configs", False),
        filter_usernames=_usernames(args) if scope == "users" else None,
        filter_org_slugs=(
            frozenset(args.filter_org_slugs.split(","))
            if scope == "organizations" and args.filter_org_slugs
            else None
        ),
        batch_size=args.batch_size,
        geoip_db=getattr(args, "geoip_db", None),
        region_name=getattr(args, "region_name", None),
        fault=args.inject_fault,
        max_db_connections=args.max_db_connections,
    )
    outputs = None
    if args.detach:
        from relocate.beam.pipeline import ImportOutputs

        outputs = ImportOutputs(args.findings_file, args.report_file)
    quiet = args.silent or args.detach  # a detached run does not watch the job
    progress = watch_progress(settings, err, time.monotonic()) if not quiet else ExitStack()
    with progress, ExitStack() as stack:
        source = args.src
        if source == "-":
            # Beam workers may run in other processes: hand them a file, not our stdin.
            # What is spooled is the input as given (ciphertext when it is encrypted).
            import shutil
            import tempfile

            spool = stack.enter_context(tempfile.NamedTemporaryFile(prefix="relocate-stdin-"))
            shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
            spool.flush()
            source = spool.name
        summary = run_pipeline(
            source, settings, beam_args, decryption=decryption, registry=registry, outputs=outputs
        )
    return summary, (1 if summary is not None and summary.findings else 0)
