"""``relocate generate OUT --rows N [--seed S] [--scope organizations|global] [--shuffle]``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from relocate.generate.engine import GEN_SCOPES, generate

__all__ = ("main", "register", "run_generate")


def run_generate(args: argparse.Namespace) -> int:
    """The ``relocate generate`` command; returns the exit status."""
    if args.rows < 1:
        print("Error: --rows must be a positive number", file=sys.stderr)
        return 2
    if args.out == "-":
        try:
            result = generate(sys.stdout.buffer, args.rows, args.seed, args.scope, args.shuffle)
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as other Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        where = "standard output"
    else:
        out_path = Path(args.out)
        tmp_dir = str(out_path.resolve().parent)
        # Written beside itself and renamed: a half-written export never has OUT's name.
        fd, partial = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb", buffering=1 << 20) as f:
                result = generate(f, args.rows, args.seed, args.scope, args.shuffle, tmp_dir)
            os.chmod(partial, 0o644)
            os.replace(partial, out_path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        where = str(out_path)
    if not args.quiet:
        rate = result.rows / result.seconds if result.seconds else 0.0
        print(
            f"Wrote {result.rows:,} rows ({result.orgs:,} organizations) to {where} in "
            f"{result.seconds:.1f} s ({rate:,.0f} rows/s).",
            file=sys.stderr,
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds ``generate OUT --rows N [--seed S] [--scope ...] [--shuffle]`` to a CLI.

    Sets ``func`` on the namespace: ``args.func(args)`` runs it and returns the exit
    status.
    """
    parser = subparsers.add_parser(
        "generate",
        help="write a realistic synthetic Sentry export",
        description="Write a synthetic Sentry export of about N rows: organizations with "
        "their users, members, teams, projects, keys, options, alert rules, "
        "dashboards and monitors, in Sentry's export format.",
    )
    parser.add_argument("out", metavar="OUT", help="the export file to write ('-': stdout)")
    parser.add_argument(
        "--rows",
        type=int,
        required=True,
        metavar="N",
        help="total rows, approximately (whole organizations, within 1%%)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the same seed gives the same bytes (default 0)"
    )
    parser.add_argument(
        "--scope",
        choices=GEN_SCOPES,
        default="organizations",
        help="'global' adds Global-scope models (user IPs, authenticators, "
        "API applications, integrations)",
    )
    parser.add_argument(
        "--shuffle", action="store_true", help="rows in a random order instead of export order"
    )
    parser.add_argument("--quiet", action="store_true", help="no summary line on stderr")
    parser.set_defaults(func=run_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m relocate.generate OUT --rows N ...``: the command without the CLI."""
    parser = argparse.ArgumentParser(prog="python -m relocate.generate")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["generate", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)

