"""The commands beside ``import``: ``schema``, ``rollback`` and ``local-db``."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from typing import TextIO

from relocate.cli.common import parse_import_uuid, target_from_args
from relocate.cli.terminal import terminal_safe


def schema_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from relocate.db.ddl import create_schema, schema_statements

    if args.action == "sql":
        for statement in schema_statements():
            print(statement.strip() + ";", file=out)
        return 0
    target = target_from_args(args)
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


def rollback_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from relocate.db.rollback import RollbackRefused, rollback_import
    from relocate.db.target import Target, connect
    from relocate.schemas.registry import Registry

    import_uuid = parse_import_uuid(args.import_uuid)
    target = target_from_args(args)
    with ExitStack() as stack:
        if target is None:
            from relocate.db.embedded import embedded_target

            target = Target(stack.enter_context(embedded_target(err)))
        with connect(target) as conn:
            try:
                result = rollback_import(conn, Registry.load(), import_uuid)
            except (RollbackRefused, LookupError) as exc:
                print(f"Error: {terminal_safe(exc)}", file=err)
                return 1
    for table, n in sorted(result.deleted.items()):
        print(f"deleted {n:>8,} rows of {table}", file=err)
    for table, n in sorted(result.restored.items()):
        print(f"restored {n:>7,} rows of {table}", file=err)
    print(f"Import {import_uuid} rolled back.", file=err)
    return 0


def local_db_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
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
