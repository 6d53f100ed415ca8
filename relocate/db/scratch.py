"""A throwaway copy of the part of a target an import reads and writes (``relocate plan``).

The plan runs the real import against this copy, so its outcome is the import's by
construction; the target itself is only read. ``scratch_copy``:

1. starts a private PostgreSQL cluster in a temporary directory (``relocate.db.localpg``);
2. opens one ``REPEATABLE READ READ ONLY`` transaction on the target and exports its
   snapshot, so the schema (``pg_dump --snapshot``) and every row copied are one
   consistent state;
3. restores the schema's pre-data section, streams the rows of every table an import can
   read or write with ``COPY ... TO STDOUT`` / ``COPY ... FROM STDIN`` (bounded memory),
   then restores the post-data section (indexes, constraints) and the sequences' state;
4. stops the cluster and deletes its directory at the end, on error and on Ctrl-C too.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from relocate.db.localpg import LocalCluster, PostgresNotFound, candidate_bindirs, major_version
from relocate.db.target import TargetLike, conninfo
from relocate.db.wipe import SIDE_EFFECT_TABLES
from relocate.logic.rules.replicas import REPLICAS
from relocate.schemas.registry import Registry

#: The scratch cluster's database.
DATABASE = "sentry"

#: relocate's bookkeeping tables whose rows of one import are copied (a plan of a resumed
#: import); the report is keyed by run, and a plan is a run of its own.
IMPORT_ROWS = ("relocate_import", "relocate_pk_map", "relocate_side_effect")

#: A TOC entry's header in pg_dump's plain output: ``-- Name: X; Type: T; Schema: S; ...``.
_TOC = re.compile(r"^-- (?:Data for )?Name: (?P<name>.*?); Type: (?P<type>.*?); Schema:")


class ScratchError(RuntimeError):
    """The scratch copy of the target could not be made."""


@dataclass
class ScratchCopy:
    """The scratch database, and what was copied into it."""

    dsn: str
    #: The cluster's directory (deleted when the copy is).
    directory: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    #: Foreign keys left out, each with the reason (see ``restore``).
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def import_tables(registry: Registry) -> list[str]:
    """Every table an import can read or write, besides relocate's own.

    The registry's model tables, the side-effect tables Sentry's ORM writes beside them
    (lost-password hashes, slug reservations, mappings, chunk records) and the replica
    tables with the tables their fills join. Excluded models are not read by an import
    (a foreign key to one drops the row without a lookup), so their rows are not copied.
    """
    names = [m.table for m in registry.models] + list(SIDE_EFFECT_TABLES)
    for replica in REPLICAS.values():
        names += [replica.table, replica.source, *replica.join_tables]
    names += ["sentry_useremail", "sentry_email"]
    return list(dict.fromkeys(names))


def dump_bindir(server_major: int) -> str:
    """The first of relocate's PostgreSQL binary directories (``PG_BIN``, the wheel, the
    system's) whose major version is at least the target server's: pg_dump refuses a newer
    server, and the scratch server must read what that pg_dump writes."""
    found = []
    for bindir in candidate_bindirs():
        major = major_version(bindir)
        found.append(f"{bindir} ({major})")
        if major >= server_major and os.path.exists(os.path.join(bindir, "pg_dump")):
            return bindir
    raise PostgresNotFound(
        f"the target runs PostgreSQL {server_major}; a plan needs pg_dump and a server of "
        f"that major version or newer (found: {', '.join(found) or 'none'}). Set PG_BIN to "
        "such a bin directory."
    )


def _dump(bindir: str, target_info: str, snapshot: str, section: str) -> str:
    """The target's schema, one section, as pg_dump's plain SQL (a few MB at most)."""
    params = conninfo_to_dict(target_info)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password:  # through the environment: argv is visible to every user of the machine
        env["PGPASSWORD"] = str(password)
    args = [
        os.path.join(bindir, "pg_dump"),
        f"--section={section}",
        f"--snapshot={snapshot}",
        "--no-owner",
        "--no-privileges",
        "--no-comments",
        "--no-publications",
        "--no-subscriptions",
        "--no-security-labels",
        "--no-tablespaces",
        "--dbname",
        make_conninfo(**params),  # type: ignore[arg-type]
    ]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ScratchError(f"pg_dump of the target's schema failed: {done.stderr.strip()}")
    return done.stdout


def split_dump(text: str) -> Iterator[tuple[str, str, str]]:
    """Splits pg_dump's plain output into (type, name, SQL) per TOC entry.

    The settings at the top come first, as type ``SET``. psql's meta-commands
    (``\\restrict``, ``\\connect``) are left out: they are not SQL; so are the comment
    lines around each entry.
    """
    kind, name, lines = "SET", "", []
    for line in [*text.splitlines(), "-- Name: ; Type: END; Schema:"]:
        if line.startswith("\\"):
            continue
        match = _TOC.match(line)
        if not match:
            lines.append(line)
            continue
        while lines and (not lines[-1].strip() or lines[-1].startswith("--")):
            lines.pop()
        while lines and (not lines[0].strip() or lines[0].startswith("--")):
            lines.pop(0)
        if lines:
            yield kind, name, "\n".join(lines)
        kind, name, lines = match.group("type"), match.group("name"), []


def restore(conn: psycopg.Connection, text: str, skipped: list[str]) -> None:
    """Runs a schema section in the scratch database, one TOC entry at a time.

    A foreign key that does not hold on the copy (its referenced table was not copied) is
    left out and listed in ``skipped``: the import resolves references through its ledger,
    and the database's foreign keys only catch its mistakes. Anything else that fails
    stops the plan.
    """
    for kind, name, statement in split_dump(text):
        try:
            with conn.transaction():
                conn.execute(statement.encode())
        except psycopg.Error as exc:
            if kind != "FK CONSTRAINT":
                raise ScratchError(
                    f"restoring the target's schema ({kind} {name}) failed: {exc}"
                ) from exc
            skipped.append(f"{name}: {exc.diag.message_primary or exc}")


def _columns(cur: psycopg.Cursor, table: str) -> list[str]:
    return [
        r[0]
        for r in cur.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            (sql.Identifier(table).as_string(cur),),
        )
    ]


def copy_table(
    src: psycopg.Cursor, dst: psycopg.Cursor, table: str, where: sql.Composable | None = None
) -> int:
    """Streams a table's rows (those matching ``where``) from ``src`` into ``dst``.

    Binary COPY in the chunks PostgreSQL sends: memory does not grow with the table.
    Returns the rows copied.
    """
    columns = sql.SQL(", ").join(map(sql.Identifier, _columns(src, table)))
    ident = sql.Identifier(table)
    select = sql.SQL("SELECT {} FROM {}").format(columns, ident)
    if where is not None:
        select = sql.SQL("{} WHERE {}").format(select, where)
    out = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(select)
    into = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(ident, columns)
    with src.copy(out) as reader, dst.copy(into) as writer:
        for chunk in reader:
            writer.write(chunk)
    return dst.rowcount


def _existing_tables(cur: psycopg.Cursor) -> set[str]:
    return {
        r[0]
        for r in cur.execute(
            "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') "
            "AND relnamespace = current_schema()::regnamespace"
        )
    }


def _sequences(cur: psycopg.Cursor) -> list[tuple[str, str, int, bool]]:
    """Every sequence of the target's schemas with its state (schema, name, last value,
    is_called)."""
    names = cur.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relkind = 'S' "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
    ).fetchall()
    found = []
    for schema, name in names:
        row = cur.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name))
        ).fetchone()
        found.append((schema, name, row[0], row[1]))
    return found


def fill(
    source: psycopg.Connection,
    scratch: psycopg.Connection,
    bindir: str,
    target_info: str,
    registry: Registry,
    import_uuid: str | None,
    say: Callable[[str], None],
) -> ScratchCopy:
    """Copies the target's schema and the import's tables into the scratch database.

    ``source`` must be in autocommit mode; the copy is read in one read-only snapshot.
    """
    copied = ScratchCopy(dsn="")
    source.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        snapshot = source.execute("SELECT pg_export_snapshot()").fetchone()[0]
        # Both sections are dumped now, while the exporting transaction is fresh.
        pre = _dump(bindir, target_info, snapshot, "pre-data")
        post = _dump(bindir, target_info, snapshot, "post-data")
        restore(scratch, pre, copied.skipped)
        scratch.execute("RESET search_path")  # pg_dump's preamble empties it
        with source.cursor() as src, scratch.cursor() as dst:
            present = _existing_tables(src)
            tables = [t for t in import_tables(registry) if t in present]
            for table in tables:
                with scratch.transaction():
                    copied.rows[table] = copy_table(src, dst, table)
            if import_uuid is not None:
                for table in IMPORT_ROWS:
                    if table in present:
                        where = sql.SQL("import_uuid = {}").format(sql.Literal(import_uuid))
                        with scratch.transaction():
                            copied.rows[table] = copy_table(src, dst, table, where)
            sequences = _sequences(src)
        restore(scratch, post, copied.skipped)
        scratch.execute("RESET search_path")
        with scratch.transaction(), scratch.cursor() as dst:
            for schema, name, last_value, is_called in sequences:
                dst.execute(
                    "SELECT setval(format('%%I.%%I', %s::text, %s::text)::regclass, %s, %s)",
                    (schema, name, last_value, is_called),
                )
        scratch.execute("ANALYZE")  # the import's lookups plan as they would on the target
    finally:
        # On a broken connection the error that broke it is what the user is told.
        with contextlib.suppress(psycopg.Error):
            source.execute("ROLLBACK")  # nothing was written: the snapshot is let go
    total = sum(copied.rows.values())
    left_out = (
        f"; {len(copied.skipped)} foreign keys to tables not copied left out"
        if copied.skipped
        else ""
    )
    say(
        f"Plan: copied {total:,} rows of {len(copied.rows)} tables into a scratch "
        f"database{left_out}."
    )
    return copied


@contextmanager
def scratch_copy(
    target: TargetLike,
    registry: Registry,
    import_uuid: str | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Iterator[ScratchCopy]:
    """A private copy of what an import of ``target`` reads and writes; deleted after use.

    Args:
        target: the real target (only read, in one read-only transaction).
        registry: the model registry (which tables an import touches).
        import_uuid: a resumed import's UUID: its ledger, side-effect and import rows are
            copied too. None: no bookkeeping rows are copied.
        say: where progress lines go.

    Yields:
        The scratch copy; its ``dsn`` needs no password.

    Raises:
        ScratchError: the schema could not be dumped or restored.
        PostgresNotFound: no PostgreSQL binaries as new as the target's server.
    """
    started = time.monotonic()
    target_info = conninfo(target)
    with psycopg.connect(target_info, autocommit=True, application_name="relocate plan") as source:
        bindir = dump_bindir(source.info.server_version // 10000)
        base = tempfile.mkdtemp(prefix="relocate-plan-")
        cluster = LocalCluster(Path(base), durable=False)
        cluster.bindir = bindir  # a server as new as the pg_dump that writes its schema
        try:
            cluster.init()
            cluster.start()
            with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
            dsn = cluster.dsn(DATABASE)
            with psycopg.connect(dsn, autocommit=True) as scratch:
                copied = fill(source, scratch, bindir, target_info, registry, import_uuid, say)
            copied.dsn, copied.directory = dsn, base
            copied.seconds = time.monotonic() - started
            yield copied
        finally:
            cluster.stop(mode="immediate")
            shutil.rmtree(base, ignore_errors=True)
