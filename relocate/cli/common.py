"""What the commands share: usage errors, the target flags, the import UUID."""

from __future__ import annotations

import argparse
import uuid
from typing import Any


class UsageError(Exception):
    """A command-line usage error (exit status 2)."""


def add_target_args(parser: argparse.ArgumentParser) -> None:
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


def target_from_args(args: argparse.Namespace) -> Any:
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


def on_dataflow(beam_args: list[str]) -> bool:
    runner = ""
    for i, arg in enumerate(beam_args):
        if arg.startswith("--runner="):
            runner = arg.partition("=")[2]
        elif arg == "--runner" and i + 1 < len(beam_args):
            runner = beam_args[i + 1]
    return "dataflow" in runner.lower()


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"wants a whole number of at least 1, got {text!r}")
    return value


def parse_import_uuid(value: str | None) -> str:
    if value is None:
        return uuid.uuid4().hex
    try:
        return uuid.UUID(value).hex
    except ValueError:
        raise UsageError(f"--import-uuid must be a UUID (32 hex digits), got {value!r}") from None
