"""Test harness: a throwaway PostgreSQL cluster and a fresh database per test.

The session starts its own cluster (``LocalCluster``, as the ``postgres`` user when the
tests run as root), builds a template database with the whole target schema once, and
clones it for every test that asks for ``db_dsn``. A clone (CREATE DATABASE ... TEMPLATE)
costs the server about 0.3 s once earlier tests have left it work, so a thread makes the
next ones while a test runs (``tests/dbpool.py``); the file-copy strategy was slower, its
checkpoint writing what earlier tests left dirty. The server is stopped at the end, also
on failure. ``TEST_PG_DSN`` points the suite at an existing server instead.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# As the CLI does (relocate/cli/main.py), before any test module loads gRPC: the tests
# start clusters (initdb as another user: fork, not vfork) from processes holding gRPC
# channels, and gRPC's fork handlers crashed such a child.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import psycopg
import pytest

from relocate.db.localpg import LocalCluster

from .dbpool import DatabasePool

_SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
#: Sentry's backup fixtures (getsentry/sentry's ``fixtures/backup/`` with its release
#: snapshots and ``model_dependencies/``); not part of this repository.
FIXTURES = Path(os.environ.get("SENTRY_FIXTURES") or _SHARED / "fixtures" / "sentry")
#: Sentry's column inventory (``sentry-columns.json``), which ``tables.json`` is built from.
SENTRY_COLUMNS = Path(os.environ.get("SENTRY_COLUMNS") or _SHARED / "docs" / "sentry-columns.json")
#: Per xdist worker, so that workers sharing one server (``TEST_PG_DSN``) keep apart.
TEMPLATE_DB = f"relocate_template_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def _require(path: Path, what: str, variable: str, probe: str | None = None) -> Path:
    """``path``, or a skip naming what is missing (a failure when ``CI=true``).

    ``probe``: a file that must exist inside ``path`` (a directory) for it to count.
    """
    if (path / probe if probe else path).exists():
        return path
    message = (
        f"{what} not found at {path}: set {variable} to point at them "
        '(README, "Sentry\'s fixtures")'
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: one worker more than the cores. A worker spends part of its time
    waiting for its PostgreSQL and for Beam's worker threads; on 2 cores a third worker
    took 9% off the wall time. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides first."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return len(os.sched_getaffinity(0)) + 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long tests first (stable otherwise): a two-minute test that starts last makes
    every other worker wait for it."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running tests (CI runs them)")
    config.addinivalue_line(
        "markers",
        "acceptance: Sentry's import behaviours end to end (CI also runs them on the "
        "machine's own PostgreSQL, PG_BIN=/usr/lib/postgresql/N/bin)",
    )


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get("TEST_PG_DSN"):
        return "PostgreSQL: TEST_PG_DSN"
    from relocate.db.localpg import PostgresNotFound, find_pg_bindir, major_version

    try:
        bindir = find_pg_bindir()
    except PostgresNotFound as exc:
        return f"PostgreSQL: {exc}"
    return f"PostgreSQL {major_version(bindir)}: {bindir}"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Sentry's backup fixtures; the test skips without them (fails when ``CI=true``)."""
    return _require(FIXTURES, "Sentry's backup fixtures", "SENTRY_FIXTURES", "fresh-install.json")


@pytest.fixture(scope="session")
def sentry_columns() -> Path:
    """Sentry's column inventory; the test skips without it (fails when ``CI=true``)."""
    return _require(SENTRY_COLUMNS, "Sentry's column inventory", "SENTRY_COLUMNS")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """DSN (database ``postgres``) of a server for this test session."""
    if os.environ.get("TEST_PG_DSN"):
        yield os.environ["TEST_PG_DSN"]
        return
    base = tempfile.mkdtemp(prefix="relocate-pgtest-", dir="/tmp")
    # No autovacuum: a test's database lives for seconds, and the launcher visiting some
    # hundred of them took CPU from the tests (three modules: 2 min 47 s -> 2 min 28 s).
    cluster = LocalCluster(Path(base), durable=False, settings=(("autovacuum", "off"),))
    try:
        cluster.init()
        cluster.start()
        yield cluster.dsn()
    finally:
        cluster.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def _with_dbname(dsn: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, dbname=dbname)


@pytest.fixture(scope="session")
def template_dsn(pg_server: str) -> str:
    """A database with the full target schema, used as the template of every test DB."""
    from relocate.db.ddl import create_schema

    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    dsn = _with_dbname(pg_server, TEMPLATE_DB)
    with psycopg.connect(dsn) as conn:
        create_schema(conn)
    return dsn


_counter = itertools.count()


@contextlib.contextmanager
def _database(pg_server: str, prefix: str, template: str | None) -> Iterator[str]:
    """A database created for one test (from ``template`` if given), dropped after it."""
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    clause = f" TEMPLATE {template}" if template else ""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}{clause}")
    try:
        yield _with_dbname(pg_server, name)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def database_from(pg_server: str, template_dsn: str):
    """A factory of fresh databases: ``database_from(source)`` is a context manager giving
    a clone of ``source`` (the DSN of a database nobody is connected to), or of the schema
    template when ``source`` is None. For tests that share a costly starting point (an
    import done once per module) and each change a copy of it."""

    def make(source: str | None = None, prefix: str = "t"):
        name = (
            TEMPLATE_DB if source is None else psycopg.conninfo.conninfo_to_dict(source)["dbname"]
        )
        return _database(pg_server, prefix, name)

    return make


@pytest.fixture
def empty_db_dsn(pg_server: str) -> Iterator[str]:
    """A fresh, empty database (no schema)."""
    with _database(pg_server, "t_empty", None) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def schema_databases(pg_server: str, template_dsn: str) -> Iterator[DatabasePool]:
    """Clones of the template, made ahead of need (``tests/dbpool.py``)."""
    pool = DatabasePool(pg_server, TEMPLATE_DB, "t_pool")  # its own names: `_database` counts "t_"
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def db_dsn(schema_databases: DatabasePool) -> Iterator[str]:
    """A fresh database with the whole target schema, cloned from the template."""
    dsn = schema_databases.take()
    try:
        yield dsn
    finally:
        schema_databases.give_back(dsn)


@pytest.fixture
def another_db_dsn(schema_databases: DatabasePool) -> Iterator[str]:
    """A second fresh database with the whole target schema (to compare two runs)."""
    dsn = schema_databases.take()
    try:
        yield dsn
    finally:
        schema_databases.give_back(dsn)
