"""``relocate verify SRC --import-uuid U``, and ``relocate import ... --verify``."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from typing import Any, TextIO

from relocate.cli.common import UsageError, parse_import_uuid, target_from_args
from relocate.cli.terminal import terminal_safe

#: Longest value shown in a problem line (the values come from the export).
SHOWN = 200

_COLUMNS = (
    ("rows", "rows"),
    ("checked", "checked"),
    ("matched", "matched"),
    ("exempt-only", "exempt_only"),
    ("existing", "existing"),
    ("skipped", "skipped"),
    ("missing", "missing"),
    ("mismatched", "mismatched"),
    ("extra", "extra"),
)


def decryption_from_args(args: argparse.Namespace) -> Any:
    """The ``DecryptionSpec`` of ``--decrypt-with`` / ``--decrypt-with-gcp-kms`` (None
    for a plain export), as ``relocate import`` takes them."""
    if args.decrypt_with and args.decrypt_with_gcp_kms:
        raise UsageError(
            "`--decrypt-with` and `--decrypt-with-gcp-kms` are mutually "
            "exclusive options - you may use one or the other, but not both."
        )
    if not (args.decrypt_with or args.decrypt_with_gcp_kms):
        return None
    from relocate.io.crypto import DecryptionSpec

    return DecryptionSpec.from_flags(
        args.decrypt_with, args.decrypt_with_gcp_kms, args.gcp_kms_endpoint
    )


def verify_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Runs ``relocate verify``; returns 0 when the target holds the export, else 1."""
    return run_verify(
        args, args.src, parse_import_uuid(args.import_uuid), decryption_from_args(args), out, err
    )


def run_verify(
    args: argparse.Namespace,
    src: str,
    import_uuid: str,
    decryption: Any,
    out: TextIO,
    err: TextIO,
) -> int:
    """Verifies import ``import_uuid`` of ``src`` on the target ``args`` names; prints
    each problem and the per-model counts to ``out``; returns the exit status."""
    import psycopg

    from relocate.db.ddl import field_map
    from relocate.db.target import Target, connect
    from relocate.db.verify import VerifyError, open_export, verify_import
    from relocate.logic.rules import build_handlers
    from relocate.schemas.registry import Registry

    target = target_from_args(args)
    with ExitStack() as stack:
        if target is None:
            from relocate.db.embedded import embedded_target

            target = Target(stack.enter_context(embedded_target(err)))
        conn = stack.enter_context(connect(target))
        # One snapshot for the whole check: a write during it cannot make rows disagree.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        rows = stack.enter_context(open_export(src, decryption))
        try:
            result = verify_import(
                conn,
                rows,
                import_uuid,
                Registry.load(),
                field_map(),
                build_handlers(),
                lambda p: print(format_problem(p), file=out, flush=True),
            )
        except VerifyError as exc:
            print(f"Error: {terminal_safe(exc)}", file=err)
            return 1
    print_counts(result, out)
    if result.status != "done":  # a running or failed import cannot hold the whole export
        print(f"Import {import_uuid} is {terminal_safe(result.status)}, not done.", file=out)
    if result.ok:
        print(f"Verified: the target holds the export as import {import_uuid} wrote it.", file=out)
        return 0
    print(f"Verify failed: {result.problems} problems (import {import_uuid}).", file=out)
    return 1


def format_problem(problem: Any) -> str:
    """``kind: model pk P: field: expected E, found F``, escaped for the terminal."""
    if problem.kind == "mismatch" and problem.field != "<row>":
        expected, found = _shown(repr(problem.expected)), _shown(repr(problem.found))
    else:
        expected, found = _shown(str(problem.expected)), _shown(str(problem.found))
    return terminal_safe(
        f"{problem.kind}: {problem.model} pk {problem.source_pk}: {problem.field}: "
        f"expected {expected}, found {found}"
    )


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def print_counts(result: Any, out: TextIO) -> None:
    """The per-model counts, and their totals."""
    from relocate.db.verify import ModelCounts

    models = sorted(result.models.items())
    width = max([len("model"), *(len(terminal_safe(m)) for m, _ in models)])
    header = "  ".join(f"{title:>{len(title)}}" for title, _ in _COLUMNS)
    print(f"{'model':<{width}}  {header}", file=out)
    total = ModelCounts()
    for model, counts in models:
        for _, attr in _COLUMNS[:1] + _COLUMNS[2:]:
            setattr(total, attr, getattr(total, attr) + getattr(counts, attr))
        print(_count_line(terminal_safe(model), counts, width), file=out)
    print(_count_line("total", total, width), file=out)


def _count_line(name: str, counts: Any, width: int) -> str:
    cells = "  ".join(f"{getattr(counts, attr):>{len(title)},}" for title, attr in _COLUMNS)
    return f"{name:<{width}}  {cells}"
