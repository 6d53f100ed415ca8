"""The argument parser of ``relocate``: every command and its flags."""

from __future__ import annotations

import argparse
from typing import Any

from relocate.cli.common import add_target_args, positive_int

SCOPES = ("users", "organizations", "config", "global")


def region_name(text: str) -> str:
    """A Sentry region name: not empty, at most REGION_NAME_LENGTH (48) characters."""
    from relocate.logic.settings import REGION_NAME_LENGTH

    if not text or len(text) > REGION_NAME_LENGTH:
        raise argparse.ArgumentTypeError(
            f"wants 1 to {REGION_NAME_LENGTH} characters, got {len(text)}"
        )
    return text


def add_decryption_args(parser: argparse.ArgumentParser) -> None:
    """The flags of an encrypted export (``relocate import`` and ``relocate verify``)."""
    parser.add_argument("--decrypt-with", metavar="PRIVATE_KEY.pem")
    parser.add_argument("--decrypt-with-gcp-kms", metavar="CONFIG.json")
    parser.add_argument("--gcp-kms-endpoint", help=argparse.SUPPRESS)


def add_import_args(scopes: Any, scope: str, *, plan: bool) -> argparse.ArgumentParser:
    """The parser of ``relocate import <scope>``, or of ``relocate plan <scope>``.

    A plan takes the import's flags (it runs the same import, on a scratch copy of the
    target), less those that make no sense there (``--detach``, ``--verify``, the fault
    injection), plus ``--plan-file``.
    """
    verb = "plan an import" if plan else "import"
    # Beam's options pass through unparsed: no abbreviations, or `--region` (Dataflow)
    # would be taken for `--region-name`.
    p = scopes.add_parser(scope, help=f"{verb} in the {scope} scope", allow_abbrev=False)
    p.add_argument("src", metavar="SRC", help="export file, gs:// URI, or - for stdin")
    p.set_defaults(usage_parser=p)
    add_target_args(p)
    p.add_argument(
        "--import-uuid",
        help="identity of the import (random when absent); rerun with the same value to resume",
    )
    add_decryption_args(p)
    p.add_argument("--findings-file", metavar="FILE")
    p.add_argument(
        "--report-file",
        metavar="FILE",
        help="write every skipped or dropped row, with its reason, as JSON",
    )
    p.add_argument("--no-prompt", action="store_true")
    p.add_argument("--silent", action="store_true")
    p.add_argument("--verbose", action="store_true", help="log a line for every batch written")
    p.add_argument("--batch-size", type=positive_int, default=1000, help=argparse.SUPPRESS)
    p.add_argument(
        "--max-db-connections",
        type=positive_int,
        metavar="N",
        help="the most database connections the pipeline's workers hold at once "
        "(default: no cap)",
    )
    if plan:
        p.add_argument(
            "--plan-file",
            metavar="FILE",
            help="write the whole plan as JSON (a local path or gs://)",
        )
        p.set_defaults(detach=False, verify=False, inject_fault=None)
    else:
        p.add_argument(
            "--detach",
            action="store_true",
            help="submit the pipeline and exit without waiting (Dataflow): the job records "
            "its outcome in relocate_import and writes the findings and report files itself",
        )
        p.add_argument("--inject-fault", help=argparse.SUPPRESS)
        p.add_argument(
            "--verify",
            action="store_true",
            help="after a successful import, run `relocate verify` on it (exit 1 when it fails)",
        )
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
        p.add_argument(
            "--region-name",
            type=region_name,
            metavar="NAME",
            help="the region recorded in organization mappings and slug reservations "
            "(default: the region the target's mappings already name, else Sentry's "
            "monolith region, --monolith--)",
        )
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relocate",
        description="Import Sentry exports into PostgreSQL with Apache Beam.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import", help="import an export in one of Sentry's four scopes")
    scopes = imp.add_subparsers(dest="scope", required=True)
    for scope in SCOPES:
        add_import_args(scopes, scope, plan=False)

    plan = sub.add_parser(
        "plan",
        help="what an import would do to the target, without writing to it (a dry run)",
    )
    plan_scopes = plan.add_subparsers(dest="scope", required=True)
    for scope in SCOPES:
        add_import_args(plan_scopes, scope, plan=True)

    schema = sub.add_parser("schema", help="the target schema")
    schema_sub = schema.add_subparsers(dest="action", required=True)
    create = schema_sub.add_parser("create", help="create the Sentry-compatible schema")
    add_target_args(create)
    schema_sub.add_parser("sql", help="print the schema's DDL")

    local = sub.add_parser("local-db", help="the embedded local PostgreSQL cluster")
    local.add_argument("action", choices=("start", "stop", "status"))

    rollback = sub.add_parser(
        "rollback", help="remove what one import inserted and restore what it overwrote"
    )
    rollback.add_argument("--import-uuid", required=True)
    add_target_args(rollback)

    verify = sub.add_parser(
        "verify", help="check that the target holds an export as one import wrote it"
    )
    verify.add_argument("src", metavar="SRC", help="export file, gs:// URI, or - for stdin")
    verify.add_argument("--import-uuid", required=True, help="the import that wrote SRC")
    add_decryption_args(verify)
    add_target_args(verify)

    status = sub.add_parser(
        "status", help="show an import's state, stage and rows per stage from the target"
    )
    status.add_argument("--import-uuid", required=True)
    status.add_argument("--json", action="store_true", help="print it as one JSON object")
    add_target_args(status)

    from relocate.generate import register as register_generate

    register_generate(sub)

    try:
        from relocate.cli.backup import register
    except ImportError:  # pragma: no cover - the backup commands are optional
        register = None
    if register is not None:
        register(sub)
    return parser
