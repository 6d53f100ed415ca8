"""The ``relocate`` command line.

``relocate import users|organizations|config|global SRC`` with Sentry's flags, plus
``--dsn`` (the target; without it, the embedded local cluster), ``--dsn-secret`` /
``--db-password-secret`` (credentials from Secret Manager, read by the workers), ``--import-uuid``,
``--report-file`` and Beam's own pipeline options, which pass through unchanged
(``--runner``, ``--direct_running_mode``, ``--direct_num_workers``, ...).
Also ``relocate schema create``, ``relocate local-db start|stop`` and ``relocate backup``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from typing import Any, TextIO

SCOPES = ("users", "organizations", "config", "global")

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


class UsageError(Exception):
    """A command-line usage error (exit status 2)."""


def _add_target_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn",
        help="PostgreSQL connection string of the target (default: the embedded local "
        "cluster); libpq's service file, password file and PG* variables apply",
    )
    parser.add_argument(
        "--dsn-secret",
        metavar="NAME",
        help="Secret Manager secret (projects/P/secrets/S[/versions/V]) holding the whole DSN",
    )
    parser.add_argument(
        "--db-password-secret",
        metavar="NAME",
        help="Secret Manager secret (projects/P/secrets/S[/versions/V]) holding the password",
    )
    parser.add_argument("--secret-manager-endpoint", help=argparse.SUPPRESS)


def _target(args: argparse.Namespace) -> Any:
    """The target given on the command line (a ``relocate.db.target.Target``), or None for
    the embedded cluster (no ``--dsn`` and no secret)."""
    from relocate.db.secrets import version_name
    from relocate.db.target import Target

    if args.dsn is not None and args.dsn_secret:
        raise UsageError(
            "`--dsn` and `--dsn-secret` are mutually exclusive options - you may use one "
            "or the other, but not both."
        )
    for flag, name in (
        ("--dsn-secret", args.dsn_secret),
        ("--db-password-secret", args.db_password_secret),
    ):
        if name is not None:
            try:
                version_name(name)
            except ValueError as exc:
                raise UsageError(f"{flag}: {exc}") from None
    if args.dsn is None and not args.dsn_secret and not args.db_password_secret:
        return None
    return Target(
        dsn=args.dsn or "",
        dsn_secret=args.dsn_secret,
        password_secret=args.db_password_secret,
        secret_endpoint=args.secret_manager_endpoint,
    )


def _on_dataflow(beam_args: list[str]) -> bool:
    runner = ""
    for i, arg in enumerate(beam_args):
        if arg.startswith("--runner="):
            runner = arg.partition("=")[2]
        elif arg == "--runner" and i + 1 < len(beam_args):
            runner = beam_args[i + 1]
    return "dataflow" in runner.lower()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"wants a whole number of at least 1, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relocate",
        description="Import Sentry exports into PostgreSQL with Apache Beam.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import", help="import an export in one of Sentry's four scopes")
    scopes = imp.add_subparsers(dest="scope", required=True)
    for scope in SCOPES:
        p = scopes.add_parser(scope, help=f"import in the {scope} scope")
        p.add_argument("src", metavar="SRC", help="export file, gs:// URI, or - for stdin")
        p.set_defaults(usage_parser=p)
        _add_target_args(p)
        p.add_argument(
            "--import-uuid",
            help="identity of the import (random when absent); rerun with the same value to resume",
        )
        p.add_argument("--decrypt-with", metavar="PRIVATE_KEY.pem")
        p.add_argument("--decrypt-with-gcp-kms", metavar="CONFIG.json")
        p.add_argument("--gcp-kms-endpoint", help=argparse.SUPPRESS)
        p.add_argument("--findings-file", metavar="FILE")
        p.add_argument(
            "--report-file",
            metavar="FILE",
            help="write every skipped or dropped row, with its reason, as JSON",
        )
        p.add_argument("--no-prompt", action="store_true")
        p.add_argument("--silent", action="store_true")
        p.add_argument("--batch-size", type=int, default=1000, help=argparse.SUPPRESS)
        p.add_argument(
            "--detach",
            action="store_true",
            help="submit the pipeline and exit without waiting (Dataflow): the job records "
            "its outcome in relocate_import and writes the findings and report files itself",
        )
        p.add_argument(
            "--max-db-connections",
            type=_positive_int,
            metavar="N",
            help="the most database connections the pipeline's workers hold at once "
            "(default: no cap)",
        )
        p.add_argument("--inject-fault", help=argparse.SUPPRESS)
        if scope != "global":
            p.add_argument("--merge-users", action="store_true")
        if scope == "users":
            p.add_argument("--filter-usernames", default="")
            p.add_argument("--filter-usernames-file", metavar="FILE")
        if scope == "organizations":
            p.add_argument("--filter-org-slugs", default="")
        if scope == "config":
            p.add_argument("--overwrite-configs", action="store_true")
        if scope in ("global", "organizations"):
            p.add_argument(
                "--geoip-db",
                metavar="PATH",
                help="MaxMind database for user IP country and region codes",
            )

    schema = sub.add_parser("schema", help="the target schema")
    schema_sub = schema.add_subparsers(dest="action", required=True)
    create = schema_sub.add_parser("create", help="create the Sentry-compatible schema")
    _add_target_args(create)
    schema_sub.add_parser("sql", help="print the schema's DDL")

    local = sub.add_parser("local-db", help="the embedded local PostgreSQL cluster")
    local.add_argument("action", choices=("start", "stop", "status"))

    rollback = sub.add_parser(
        "rollback", help="remove what one import inserted and restore what it overwrote"
    )
    rollback.add_argument("--import-uuid", required=True)
    _add_target_args(rollback)

    from relocate.generate import register as register_generate

    register_generate(sub)

    try:
        from relocate.cli.backup import register
    except ImportError:  # pragma: no cover - the backup commands are optional
        register = None
    if register is not None:
        register(sub)
    return parser


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


def _import_uuid(value: str | None) -> str:
    if value is None:
        return uuid.uuid4().hex
    try:
        return uuid.UUID(value).hex
    except ValueError:
        raise UsageError(f"--import-uuid must be a UUID (32 hex digits), got {value!r}") from None


class _Progress:
    """Prints Sentry's "Still importing" line every few seconds, with rows written."""

    def __init__(self, target: Any, import_uuid: str, out: TextIO, every: float = 5.0) -> None:
        self._target = target
        self._uuid = import_uuid
        self._out = out
        self._every = every
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        from relocate.db.target import connect

        while not self._stop.wait(self._every):
            line = f"Still importing: {time.monotonic() - self._start:.2f} seconds elapsed."
            try:
                with connect(self._target, connect_timeout=5) as conn:
                    rows = conn.execute(
                        "SELECT stage, count(*) FROM relocate_pk_map WHERE import_uuid = %s "
                        "GROUP BY stage ORDER BY stage",
                        (self._uuid,),
                    ).fetchall()
                if rows:
                    written = sum(n for _, n in rows)
                    line += f" {written:,} rows written (up to stage {rows[-1][0]})."
            except Exception:  # noqa: BLE001 - progress is best effort
                pass
            print(line, file=self._out, flush=True)


def _print_summary(summary: Any, out: TextIO) -> None:
    header = ("model", "read", "inserted", "existing", "overwritten", "skipped", "dropped")
    rows = [
        (name, m.read, m.inserted, m.existing, m.overwritten, m.skipped, m.dropped)
        for name, m in sorted(summary.models.items())
    ]
    t = summary.total
    rows.append(("total", t.read, t.inserted, t.existing, t.overwritten, t.skipped, t.dropped))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        if i == len(rows):
            print("  ".join("-" * w for w in widths), file=out)
        print(
            "  ".join(
                str(v).ljust(w) if j == 0 else str(v).rjust(w)
                for j, (v, w) in enumerate(zip(row, widths))
            ),
            file=out,
        )


def _skips_summary(summary: Any, out: TextIO) -> None:
    reasons: dict[tuple[str, str, str], int] = {}
    for entry in summary.report:
        if entry["action"] in ("skipped", "dropped"):
            key = (entry["action"], entry["model"], entry["reason"])
            reasons[key] = reasons.get(key, 0) + 1
    if not reasons:
        return
    print("Rows not imported:", file=out)
    for (action, model, reason), n in sorted(reasons.items()):
        print(f"  {n:>7,} {action} {model}: {reason}", file=out)


def _format_finding(f: dict) -> str:
    return (
        f"RpcImportError(\n    kind: {f['kind']},\n    on: InstanceID(model: "
        f"'{f['on']['model']}', ordinal: {f['on']['ordinal']}),\n    left_pk: "
        f"{f['left_pk']},\n    reason: {f['reason']}\n)"
    )


def run_import(args: argparse.Namespace, beam_args: list[str], out: TextIO, err: TextIO) -> int:
    """Runs ``relocate import <scope>``; returns the exit status."""
    from relocate.io.outputs import open_output, write_findings, write_report
    from relocate.schemas.registry import Registry

    say = (lambda *a: None) if args.silent else (lambda *a: print(*a, file=err, flush=True))
    scope = args.scope
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
        if args.src == "-" and scope == "global" and not args.no_prompt:
            raise UsageError(
                "reading the export from standard input needs --no-prompt "
                "(the confirmation prompt also reads standard input)"
            )
        target = _target(args)
        if target is not None and _on_dataflow(beam_args):
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
        decryption = None
        if args.decrypt_with or args.decrypt_with_gcp_kms:
            from relocate.io.crypto import DecryptionSpec

            decryption = DecryptionSpec.from_flags(
                args.decrypt_with, args.decrypt_with_gcp_kms, args.gcp_kms_endpoint
            )
        import_uuid = _import_uuid(args.import_uuid)
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
            result = _execute(args, beam_args, target, import_uuid, registry, decryption, say, err)
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
                print(_format_finding(finding), file=err)
            if any(f["kind"] == "IntegrityError" for f in summary.findings):
                for hint in INTEGRITY_HINTS:
                    print(hint, file=err)
            print(
                f"Import failed; rows already committed stay tagged with import UUID "
                f"{import_uuid}: fix the cause and rerun with --import-uuid {import_uuid} "
                "to resume.",
                file=err,
            )
        elif not args.silent:
            _print_summary(summary, err)
            _skips_summary(summary, err)
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


def _execute(
    args: argparse.Namespace,
    beam_args: list[str],
    target: Any,
    import_uuid: str,
    registry: Any,
    decryption: Any,
    say: Any,
    err: TextIO,
) -> tuple[Any, int]:
    from relocate.beam.run import run_import as run_pipeline
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
        fault=args.inject_fault,
        max_db_connections=args.max_db_connections,
    )
    outputs = None
    if args.detach:
        from relocate.beam.pipeline import ImportOutputs

        outputs = ImportOutputs(args.findings_file, args.report_file)
    quiet = args.silent or args.detach  # a detached run does not watch the job
    progress = _Progress(settings, import_uuid, err) if not quiet else ExitStack()
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


def main(
    argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Entry point of the ``relocate`` console script."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "import":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not any(a.startswith("--runner") for a in extra):
        # The DirectRunner first tries to download Prism, which cannot work offline.
        extra = ["--runner=FnApiRunner", *extra]
    _configure_logging(err, silent=getattr(args, "silent", False))
    try:
        if args.command == "import":
            return run_import(args, extra, out, err)
        if args.command == "schema":
            return _schema(args, out, err)
        if args.command == "local-db":
            return _local_db(args, out, err)
        if args.command == "rollback":
            return _rollback(args, out, err)
        return args.func(args)
    except UsageError as exc:
        getattr(args, "usage_parser", parser).print_usage(err)
        print(f"Error: {exc}", file=err)
        return 2
    except Exception as exc:  # noqa: BLE001 - turned into a clear message and exit 1
        from relocate.cli.errors import describe

        message = describe(exc)
        if message is None:
            raise
        print(f"Error: {message}", file=err)
        return 1


def _configure_logging(err: TextIO, silent: bool) -> None:
    """relocate's own progress at INFO; Beam only when something is really wrong.

    Beam logs a DoFn's exception with its traceback before re-raising it; the user gets
    the message from ``main`` (and the traceback there too when it is a bug), so the copy
    is dropped. The root logger also carries Beam's import-time notes about optional GCP
    modules, which are noise without the [gcp] extra.
    """
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    if not root.handlers:  # keep a host's handlers (pytest's, an embedding program's)
        root.addHandler(handler)
    root.setLevel(logging.ERROR)
    logging.getLogger("relocate").setLevel(logging.WARNING if silent else logging.INFO)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    logging.getLogger("apache_beam.runners.worker").setLevel(logging.CRITICAL)


def _schema(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from relocate.db.ddl import create_schema, schema_statements

    if args.action == "sql":
        for statement in schema_statements():
            print(statement.strip() + ";", file=out)
        return 0
    target = _target(args)
    if target is None:
        from relocate.db.embedded import embedded_target

        with embedded_target(err):
            pass
        print("Schema created in the embedded database.", file=err)
        return 0
    from relocate.db.target import connect

    with connect(target) as conn:
        create_schema(conn)
    print("Schema created.", file=err)
    return 0


def _rollback(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from relocate.db.rollback import RollbackRefused, rollback_import
    from relocate.db.target import Target, connect
    from relocate.schemas.registry import Registry

    import_uuid = _import_uuid(args.import_uuid)
    target = _target(args)
    with ExitStack() as stack:
        if target is None:
            from relocate.db.embedded import embedded_target

            target = Target(stack.enter_context(embedded_target(err)))
        with connect(target) as conn:
            try:
                result = rollback_import(conn, Registry.load(), import_uuid)
            except (RollbackRefused, LookupError) as exc:
                print(f"Error: {exc}", file=err)
                return 1
    for table, n in sorted(result.deleted.items()):
        print(f"deleted {n:>8,} rows of {table}", file=err)
    for table, n in sorted(result.restored.items()):
        print(f"restored {n:>7,} rows of {table}", file=err)
    print(f"Import {import_uuid} rolled back.", file=err)
    return 0


def _local_db(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from relocate.db.embedded import data_dir, embedded_target, stop_embedded
    from relocate.db.localpg import LocalCluster

    if args.action == "start":
        with embedded_target(err, keep_running=True) as dsn:
            print(dsn, file=out)
        return 0
    if args.action == "stop":
        print("stopped" if stop_embedded() else "no embedded cluster", file=err)
        return 0
    cluster = LocalCluster(data_dir())
    running = cluster.initialized() and cluster.running()
    print(f"{cluster.data_dir}: {'running' if running else 'stopped'}", file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
