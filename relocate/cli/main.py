"""The ``relocate`` command line.

``relocate import users|organizations|config|global SRC`` with Sentry's flags, plus
``--dsn`` (the target; without it, the embedded local cluster), ``--dsn-secret`` /
``--db-password-secret`` (credentials from Secret Manager, read by the workers), ``--import-uuid``,
``--report-file`` and Beam's own pipeline options, which pass through unchanged
(``--runner``, ``--direct_running_mode``, ``--direct_num_workers``, ...).
``relocate plan <scope> SRC`` takes the same flags and writes nothing to the target.
Also ``relocate schema create``, ``relocate local-db start|stop`` and ``relocate backup``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

# Before anything loads gRPC (the Google clients, Beam's runners): relocate forks only to
# exec (initdb, pg_ctl, pg_dump, Beam's worker processes), and gRPC's fork handlers, on by
# default, ran in such a child of a process holding Secret Manager or KMS channels and
# crashed it (a scratch cluster's initdb died of SIGSEGV). An explicit setting is kept.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from relocate.beam.worker import tune_garbage_collector
from relocate.cli.commands import local_db_command, rollback_command, schema_command
from relocate.cli.common import INTERRUPTED, UsageError, was_interrupted
from relocate.cli.import_command import run_import
from relocate.cli.parser import SCOPES, build_parser
from relocate.cli.plan_command import plan_command
from relocate.cli.terminal import SafeFormatter, terminal_safe
from relocate.cli.verify_command import verify_command

__all__ = ["SCOPES", "main"]


def main(
    argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Entry point of the ``relocate`` console script."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("import", "plan"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not any(a.startswith("--runner") for a in extra):
        # The DirectRunner first tries to download Prism, which cannot work offline.
        extra = ["--runner=FnApiRunner", *extra]
    _configure_logging(
        err, silent=getattr(args, "silent", False), verbose=getattr(args, "verbose", False)
    )
    try:
        if args.command == "import":
            return run_import(args, extra, out, err)
        if args.command == "plan":
            return plan_command(args, extra, out, err)
        if args.command == "schema":
            return schema_command(args, out, err)
        if args.command == "local-db":
            return local_db_command(args, out, err)
        if args.command == "rollback":
            return rollback_command(args, out, err)
        if args.command == "verify":
            return verify_command(args, out, err)
        if args.command == "status":
            from relocate.cli.status_command import status_command

            return status_command(args, out, err)
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C anywhere else (an import says more itself)
        print("Interrupted.", file=err, flush=True)
        return INTERRUPTED
    except UsageError as exc:
        getattr(args, "usage_parser", parser).print_usage(err)
        print(f"Error: {terminal_safe(exc)}", file=err)
        return 2
    except Exception as exc:  # noqa: BLE001 - turned into a clear message and exit 1
        from relocate.cli.errors import describe

        if was_interrupted(exc):
            print("Interrupted.", file=err, flush=True)
            return INTERRUPTED
        message = describe(exc)
        if message is None:
            raise
        print(f"Error: {terminal_safe(message)}", file=err)
        return 1


def _configure_logging(err: TextIO, silent: bool, verbose: bool = False) -> None:
    """relocate's own progress at INFO; Beam only when something is really wrong.

    Beam logs a DoFn's exception with its traceback before re-raising it; the user gets
    the message from ``main`` (and the traceback there too when it is a bug), so the copy
    is dropped. The root logger also carries Beam's import-time notes about optional GCP
    modules, which are noise without the [gcp] extra.
    """
    handler = logging.StreamHandler(err)
    handler.setFormatter(SafeFormatter("%(message)s"))  # log lines carry names from the file
    root = logging.getLogger()
    if not root.handlers:  # keep a host's handlers (pytest's, an embedding program's)
        root.addHandler(handler)
    root.setLevel(logging.ERROR)
    level = logging.WARNING if silent else logging.DEBUG if verbose else logging.INFO
    logging.getLogger("relocate").setLevel(level)  # DEBUG: a line per batch (--verbose)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    logging.getLogger("apache_beam.runners.worker").setLevel(logging.CRITICAL)
    # psycopg warns when the rollback of a connection that is already broken fails (Ctrl-C
    # in the middle of a query): the error that broke it is what the user is told.
    logging.getLogger("psycopg").setLevel(logging.ERROR)


def console() -> int:
    """The ``relocate`` console script: ``main`` in a process of its own, whose garbage
    collector is tuned for an import (``tune_garbage_collector``)."""
    tune_garbage_collector()
    return main()


if __name__ == "__main__":
    raise SystemExit(console())
