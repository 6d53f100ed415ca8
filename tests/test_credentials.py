"""Database credentials: Secret Manager references and libpq's own mechanisms.

The suite's PostgreSQL cluster gets a role that must authenticate with a SCRAM password
(a pg_hba.conf rule for that role only); Secret Manager is the local gRPC server of
``relocate.testing.secret_manager_server``, spoken to by Google's real client. Every
import goes through ``relocate.cli.main.main`` on the in-process FnApiRunner.
"""

from __future__ import annotations

import base64
import bz2
import json
import os
import pickle
import secrets
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from relocate.beam.run import build_pipeline
from relocate.cli.errors import describe
from relocate.db.secrets import SecretError, read_secret
from relocate.db.target import forget_secrets
from relocate.logic.settings import ImportSettings
from relocate.testing.secret_manager_server import LocalSecretManagerServer

from .helpers import ImportRun, count, run_cli, user, write_export

#: Unique, so that finding it anywhere means it leaked.
PASSWORD = "pw-" + secrets.token_urlsafe(18)
ROLE = f"relocate_cred_{os.getpid()}"
PROJECT = "projects/test-project"


def _reload(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_reload_conf()")


def _password_required(dsn: str) -> bool:
    try:
        psycopg.connect(make_conninfo(dsn, user=ROLE), connect_timeout=5).close()
    except psycopg.OperationalError:
        return True
    return False


@pytest.fixture(scope="module")
def password_role(pg_server: str) -> Iterator[str]:
    """A superuser role that can only log in with its SCRAM password."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        hba = Path(conn.execute("SHOW hba_file").fetchone()[0])
        if not os.access(hba, os.W_OK):
            pytest.skip(f"{hba} is not writable here (an external TEST_PG_DSN server)")
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(PASSWORD)
            )
        )
        original = hba.read_text()
        # First match wins: these lines put this role (only) behind a password.
        rules = "".join(
            f"host all {ROLE} {net} scram-sha-256\n" for net in ("127.0.0.1/32", "::1/128")
        )
        hba.write_text(rules + original)
        _reload(conn)
        try:
            deadline = time.monotonic() + 10
            while not _password_required(pg_server):  # the reload is asynchronous
                assert time.monotonic() < deadline, "pg_hba.conf was not reloaded"
                time.sleep(0.05)
            yield ROLE
        finally:
            hba.write_text(original)
            _reload(conn)
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


@pytest.fixture(scope="module")
def secret_manager() -> Iterator[LocalSecretManagerServer]:
    with LocalSecretManagerServer() as server:
        yield server


@pytest.fixture(autouse=True)
def hermetic_libpq(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No password may come from the machine: only from what each test provides."""
    for name in ("PASSWORD", "SERVICE", "SERVICEFILE", "HOST", "PORT", "USER", "DATABASE"):
        monkeypatch.delenv(f"PG{name}", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-passfile"))
    forget_secrets()


@pytest.fixture
def target(db_dsn: str, password_role: str) -> dict[str, str]:
    """The test database, as the password role sees it: host, port, dbname, user."""
    params = conninfo_to_dict(db_dsn)
    return {
        "host": str(params["host"]),
        "port": str(params["port"]),
        "dbname": str(params["dbname"]),
        "user": password_role,
    }


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return write_export(tmp_path / "users.json", [user(1, "alice"), user(2, "bob")])


def _import(export: Path, *flags: str) -> ImportRun:
    run = run_cli("import", "users", str(export), "--no-prompt", *flags)
    assert PASSWORD not in run.out + run.err
    return run


def _secret(server: LocalSecretManagerServer, value: str) -> str:
    secret = f"{PROJECT}/secrets/s{uuid.uuid4().hex[:12]}"
    server.add(secret, value)
    return secret


# -- read_secret against the local Secret Manager --------------------------------------


def test_read_secret_returns_the_value(secret_manager: LocalSecretManagerServer) -> None:
    secret = _secret(secret_manager, "first\n")  # as `echo ... | gcloud` stores it
    second = secret_manager.add(secret, "second")
    assert read_secret(secret, endpoint=secret_manager.endpoint) == "second"
    assert read_secret(f"{secret}/versions/1", endpoint=secret_manager.endpoint) == "first"
    assert read_secret(second, endpoint=secret_manager.endpoint) == "second"
    assert secret_manager.accessed[-3:] == [
        f"{secret}/versions/latest",
        f"{secret}/versions/1",
        second,
    ]


@pytest.mark.parametrize(
    "name",
    [
        "",
        "db-password",
        "projects/p/secrets",
        "projects/p/secrets/s/versions/",
        "projects/p/secrets/s/versions/first",
        "projects/p/secrets/s/versions/1/extra",
        "projects/p/locations/l/secrets/s",
        "https://secretmanager.googleapis.com/v1/projects/p/secrets/s",
    ],
)
def test_read_secret_rejects_what_is_not_a_secret_name(name: str) -> None:
    with pytest.raises(ValueError, match="expected projects/PROJECT/secrets/SECRET"):
        read_secret(name, endpoint="127.0.0.1:1")


def test_read_secret_errors_are_clear(secret_manager: LocalSecretManagerServer) -> None:
    endpoint = secret_manager.endpoint
    missing = f"{PROJECT}/secrets/nothing-here"
    with pytest.raises(SecretError, match=f"secret {missing}/versions/latest not found") as info:
        read_secret(missing, endpoint=endpoint)
    assert describe(info.value) == str(info.value)  # a user error, not a traceback

    secret = _secret(secret_manager, "value")
    with pytest.raises(SecretError, match="/versions/7 not found"):
        read_secret(f"{secret}/versions/7", endpoint=endpoint)

    denied = _secret(secret_manager, "value")
    secret_manager.deny(denied)
    with pytest.raises(SecretError, match="permission denied .*roles/secretmanager.secretAccessor"):
        read_secret(denied, endpoint=endpoint)

    disabled = _secret(secret_manager, "value")
    secret_manager.disable(f"{disabled}/versions/1")
    with pytest.raises(SecretError, match="DISABLED"):
        read_secret(f"{disabled}/versions/1", endpoint=endpoint)

    secret_manager.corrupt_response_checksum = True
    try:
        with pytest.raises(SecretError, match="corrupted"):
            read_secret(secret, endpoint=endpoint)
    finally:
        secret_manager.corrupt_response_checksum = False

    with LocalSecretManagerServer() as gone:
        closed = gone.endpoint
    with pytest.raises(SecretError, match=f"could not reach Secret Manager at {closed}"):
        read_secret(secret, endpoint=closed, timeout=1)


# -- imports that authenticate ----------------------------------------------------------


def test_password_from_secret_manager(
    target: dict[str, str],
    db_dsn: str,
    export: Path,
    secret_manager: LocalSecretManagerServer,
) -> None:
    dsn = make_conninfo("", **target)  # no password in it
    secret = _secret(secret_manager, PASSWORD)
    endpoint = ("--secret-manager-endpoint", secret_manager.endpoint)
    via_secret = ("--db-password-secret", secret, *endpoint)
    uid = uuid.uuid4().hex

    run = _import(export, "--dsn", dsn, "--import-uuid", uid, *via_secret)
    assert run.code == 0, run.err
    assert count(db_dsn, "auth_user") == 2
    # Read by the process that connects; the rows prove the workers authenticated too
    # (this role has no other way in).
    assert f"{secret}/versions/latest" in secret_manager.accessed
    rollback = run_cli("rollback", "--import-uuid", uid, "--dsn", dsn, *via_secret)
    assert rollback.code == 0, rollback.err
    assert count(db_dsn, "auth_user") == 0


def test_without_the_password_authentication_fails(
    target: dict[str, str],
    db_dsn: str,
    export: Path,
    secret_manager: LocalSecretManagerServer,
) -> None:
    dsn = make_conninfo("", **target)
    run = _import(export, "--dsn", dsn)
    assert run.code == 1
    assert "Error: connection failed" in run.err and "no password supplied" in run.err, run.err

    wrong = _secret(secret_manager, "not-the-password")
    run = _import(
        export,
        "--dsn",
        dsn,
        "--db-password-secret",
        wrong,
        "--secret-manager-endpoint",
        secret_manager.endpoint,
    )
    assert run.code == 1
    assert f'password authentication failed for user "{ROLE}"' in run.err, run.err
    assert count(db_dsn, "auth_user") == 0


def test_whole_dsn_from_secret_manager(
    target: dict[str, str],
    db_dsn: str,
    export: Path,
    secret_manager: LocalSecretManagerServer,
) -> None:
    uri = (
        f"postgresql://{target['user']}:{PASSWORD}@{target['host']}:{target['port']}"
        f"/{target['dbname']}"
    )
    secret = _secret(secret_manager, uri + "\n")
    endpoint = ("--secret-manager-endpoint", secret_manager.endpoint)
    run = _import(export, "--dsn-secret", secret, *endpoint)
    assert run.code == 0, run.err
    assert count(db_dsn, "auth_user") == 2

    both = _import(export, "--dsn", "dbname=x", "--dsn-secret", secret, *endpoint)
    assert both.code == 2 and "`--dsn` and `--dsn-secret` are mutually exclusive" in both.err
    bad = _import(export, "--dsn-secret", "db-dsn", *endpoint)
    assert bad.code == 2 and "--dsn-secret: 'db-dsn' is not a Secret Manager secret" in bad.err
    garbled = _secret(secret_manager, f"host=x password={PASSWORD} port")
    run = _import(export, "--dsn-secret", garbled, *endpoint)
    assert run.code == 1 and "does not hold a valid libpq connection string" in run.err
    missing = _import(export, "--dsn-secret", f"{PROJECT}/secrets/absent", *endpoint)
    assert missing.code == 1
    assert f"Error: secret {PROJECT}/secrets/absent/versions/latest not found" in missing.err


def _passfile(tmp_path: Path, target: dict[str, str]) -> Path:
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{target['host']}:{target['port']}:*:{target['user']}:{PASSWORD}\n")
    passfile.chmod(0o600)  # libpq ignores a password file others can read
    return passfile


def test_service_file_and_passfile(
    target: dict[str, str],
    db_dsn: str,
    export: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = tmp_path / "pg_service.conf"
    services.write_text(
        "[sentry-target]\n" + "".join(f"{key}={value}\n" for key, value in target.items())
    )
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    monkeypatch.setenv("PGPASSFILE", str(_passfile(tmp_path, target)))
    run = _import(export, "--dsn", "service=sentry-target")
    assert run.code == 0, run.err
    assert count(db_dsn, "auth_user") == 2


def test_pg_environment_with_an_empty_dsn(
    target: dict[str, str],
    db_dsn: str,
    export: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in target.items():
        env = {"host": "PGHOST", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER"}
        monkeypatch.setenv(env[key], value)
    monkeypatch.setenv("PGPASSFILE", str(_passfile(tmp_path, target)))
    run = _import(export, "--dsn", "")
    assert run.code == 0, run.err
    assert count(db_dsn, "auth_user") == 2


# -- what the pipeline carries ----------------------------------------------------------


def _unpickled_payloads(pipeline_proto: beam_runner_api_pb2.Pipeline) -> bytes:
    """Every DoFn's pickled bytes, decompressed (Beam stores them bz2/zlib'd, base64'd)."""
    found = []
    for transform in pipeline_proto.components.transforms.values():
        if transform.spec.urn != common_urns.primitives.PAR_DO.urn:
            continue
        payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
        packed = base64.b64decode(payload.do_fn.payload)
        try:
            found.append(bz2.decompress(packed))
        except OSError:
            found.append(zlib.decompress(packed))
    assert found, "no DoFn found in the pipeline"
    return b"\n".join(found)


def _carried(settings: ImportSettings, export: Path) -> bytes:
    """All a runner would receive for this import: options, job graph, DoFns, settings."""
    beam_args = ["--runner=FnApiRunner", "--job_name=credentials-test"]
    pipeline = build_pipeline(str(export), settings, beam_args)
    proto = pipeline.to_runner_api()
    return b"\n".join(
        (
            repr(pipeline.options.get_all_options()).encode(),
            proto.SerializeToString(),
            _unpickled_payloads(proto),
            pickle.dumps(settings),
        )
    )


def test_password_never_in_pipeline_options_nor_pickled_dofns(
    target: dict[str, str],
    export: Path,
    secret_manager: LocalSecretManagerServer,
) -> None:
    common = {"scope": "users", "import_uuid": uuid.uuid4().hex, "run_id": uuid.uuid4().hex}
    endpoint = secret_manager.endpoint
    password_secret = ImportSettings(
        **common,
        dsn=make_conninfo("", **target),
        password_secret=_secret(secret_manager, PASSWORD),
        secret_endpoint=endpoint,
    )
    dsn_secret = ImportSettings(
        **common,
        dsn="",
        dsn_secret=_secret(secret_manager, make_conninfo("", **target, password=PASSWORD)),
        secret_endpoint=endpoint,
    )
    for settings in (password_secret, dsn_secret):
        carried = _carried(settings, export)  # connects: the secret is good
        assert PASSWORD.encode() not in carried
        assert (settings.password_secret or settings.dsn_secret or "").encode() in carried

    # The check can fail: a password given in clear is found in the pickled DoFns.
    in_clear = ImportSettings(**common, dsn=make_conninfo("", **target, password=PASSWORD))
    assert PASSWORD.encode() in _unpickled_payloads(
        build_pipeline(str(export), in_clear, ["--runner=FnApiRunner"]).to_runner_api()
    )


def test_dataflow_refuses_a_password_in_clear(export: Path) -> None:
    run = _import(
        export,
        "--dsn",
        f"host=10.0.0.5 dbname=sentry user=relocate password={PASSWORD}",
        "--runner=DataflowRunner",
    )
    assert run.code == 2
    assert "--dsn carries a password" in run.err and "--db-password-secret" in run.err


def test_plan_reads_the_target_with_the_password_from_secret_manager(
    target: dict[str, str],
    db_dsn: str,
    export: Path,
    secret_manager: LocalSecretManagerServer,
    tmp_path: Path,
) -> None:
    """`relocate plan` dumps the schema with pg_dump, which gets the password (here only
    from Secret Manager) through its environment, never its arguments."""
    dsn = make_conninfo("", **target)
    secret = _secret(secret_manager, PASSWORD)
    endpoint = ("--secret-manager-endpoint", secret_manager.endpoint)
    plan_file = tmp_path / "plan.json"

    run = run_cli(
        "plan", "users", str(export), "--dsn", dsn, "--db-password-secret", secret,
        *endpoint, "--plan-file", str(plan_file),
    )  # fmt: skip

    assert run.code == 0, run.err
    assert PASSWORD not in run.out + run.err + plan_file.read_text()
    assert json.loads(plan_file.read_text())["models"]["sentry.user"]["inserted"] == 2
    assert count(db_dsn, "auth_user") == 0
