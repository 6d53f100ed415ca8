"""The embedded default target and the CLI's clear errors."""

from __future__ import annotations

import shutil
import tempfile

import pytest

from relocate.db.localpg import find_pg_bindir

from .helpers import query, run_cli


@pytest.fixture
def embedded_dir(monkeypatch):
    base = tempfile.mkdtemp(prefix="relocate-embedded-", dir="/tmp")
    monkeypatch.setenv("RELOCATE_DATA_DIR", base)
    yield base
    run_cli("local-db", "stop")
    shutil.rmtree(base, ignore_errors=True)


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
