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


def check_output_flags(*flags: tuple[str, str | None]) -> None:
    """Checks that every given output path (``(flag, path)``; None: not given) can be
    written, before anything is: an output found unwritable only once every row is
    committed invites a rerun that imports everything twice.

    Raises:
        UsageError: naming the flag and why its path cannot be written.
    """
    from relocate.io.outputs import OutputPathError, check_output

    for flag, path in flags:
        if path:
            try:
                check_output(path)
            except OutputPathError as exc:
                raise UsageError(f"{flag}: {exc}") from None


def on_dataflow(beam_args: list[str]) -> bool:
    from relocate.beam.options import beam_option

    return "dataflow" in (beam_option(beam_args, "runner") or "").lower()


def positive_int(text: str) -> int:
    """The type of every count option: a whole number of at least 1 (``--batch-size 0``
    would never end, ``--rows -1`` write nothing)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"wants a whole number of at least 1, got {text!r}")
    return value


#: The exit status of a command stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130


def was_interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C's KeyboardInterrupt, or an error it caused.

    Beam re-raises an exception from a step as one of its own (a KeyboardInterrupt in a
    DoFn comes out as ``RuntimeError: KeyboardInterrupt [while running ...]``, with the
    original in its context).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KeyboardInterrupt):
            return True
        if isinstance(current, RuntimeError) and str(current).startswith("KeyboardInterrupt"):
            return True
        current = current.__cause__ or current.__context__
    return False


def interrupted_line(import_uuid: str) -> str:
    """The one line an import stopped by Ctrl-C ends with: how to resume or undo it."""
    return (
        f"Import {import_uuid} interrupted: the rows it wrote stay committed. Resume it with "
        f"--import-uuid {import_uuid} (only what is missing is written), or roll it back with "
        f"`relocate rollback --import-uuid {import_uuid}`."
    )


def parse_import_uuid(value: str | None) -> str:
    if value is None:
        return uuid.uuid4().hex
    try:
        return uuid.UUID(value).hex
    except ValueError:
        raise UsageError(f"--import-uuid must be a UUID (32 hex digits), got {value!r}") from None
