"""Importing Sentry's encrypted export tarballs through the real CLI (spec 2.3, 2.4, 9, 11.21).

Everything is real: RSA keys generated for the module, ``encrypt_export`` building the
tarballs, the google-cloud-kms client talking gRPC to ``LocalKmsServer`` on 127.0.0.1, and
every import run by ``relocate import`` (``import_export``) against PostgreSQL.

* Behaviour 21: the 24.7.0 release snapshot, encrypted, imports in all four scopes with a
  local key and with KMS, and the resulting database is the same, row for row, as the one
  the plain file gives (``canonical_dump``: every non-empty table ordered by id, without
  the columns that are random or ``now()`` by design).
* Bad input (wrong key, tampered token, broken tarballs, bad KMS configs, a corrupted KMS
  response, contradictory flags): a clear error naming the cause, a non-zero exit, an
  empty findings file, and not one row written. Those run in global scope on a database
  that already holds the plain import, so that a Global wipe would show too.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from relocate.io.crypto import (
    DECRYPT_FLAGS_EXCLUSIVE,
    ENCRYPTED_INPUT_WITHOUT_KEY,
    KMS_CONFIG_FIELDS,
    KMS_RESPONSE_CORRUPTED,
    MISSING_MEMBER,
    PLAIN_INPUT_WITH_KEY,
    PUBLIC_KEY_MISMATCH,
    TOKEN_TAMPERED,
    encrypt_export,
)
from relocate.testing.kms_server import LocalKmsServer

from .helpers import ImportRun, count, import_export, query

SNAPSHOT = Path("release-snapshots") / "test_at_24_7_0.json"
SCOPES = ("users", "organizations", "config", "global")

# Columns whose values are random or now() by design, whatever the input.
# Everywhere: bookkeeping of the import itself, and rows the import creates at now().
ALWAYS_RANDOM: dict[str, frozenset[str]] = {
    # The digest is of the export as given: the tarball, or the plain JSON.
    "relocate_import": frozenset({"started_at", "finished_at", "source_digest"}),
    "relocate_pk_map": frozenset({"created_at"}),
    "relocate_report": frozenset({"created_at"}),
    "sentry_regionimportchunk": frozenset({"date_added", "date_updated"}),
    "sentry_controlimportchunk": frozenset({"date_added", "date_updated"}),
    "sentry_controlimportchunkreplica": frozenset({"date_added", "date_updated"}),
    "sentry_email": frozenset({"date_added"}),  # auto-created Email rows
    "sentry_organizationslugreservation": frozenset({"date_added"}),
    # Replicas are dated when they are written (issue 13).
    **{
        table: frozenset({"date_added"})
        for table in (
            "hybridcloud_apikeyreplica",
            "hybridcloud_apitokenreplica",
            "hybridcloud_organizationslugreservationreplica",
            "hybridcloud_orgauthtokenreplica",
            "sentry_authidentityreplica",
            "sentry_authproviderreplica",
            "sentry_organizationmember_teamsreplica",
            "sentry_teamreplica",
        )
    },
    # Sentry's import gives every monitor a new guid and re-creates query subscriptions
    # (issue 13).
    "sentry_monitor": frozenset({"guid"}),
    "sentry_querysubscription": frozenset({"date_updated"}),
}
RANDOM_EVERYWHERE = frozenset({"import_uuid", "run_id"})
# Outside Global scope only: what user sanitisation regenerates (spec 6.1, 6.2, 7).
SANITISED: dict[str, frozenset[str]] = {
    "auth_user": frozenset({"password", "last_password_change"}),
    "sentry_useremail": frozenset({"validation_hash", "date_hash_added"}),
    "sentry_lostpasswordhash": frozenset({"hash", "date_added"}),
    "sentry_userip": frozenset({"first_seen", "last_seen"}),
}

Dump = dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]


# --- Database helpers ----------------------------------------------------------------------


def random_columns(table: str, scope: str) -> frozenset[str]:
    """The columns of ``table`` left out of the comparison after an import in ``scope``."""
    columns = RANDOM_EVERYWHERE | ALWAYS_RANDOM.get(table, frozenset())
    if scope != "global":
        columns |= SANITISED.get(table, frozenset())
    return columns


#: Records of how a run went (the export's size in bytes as given, times), not imported data.
RUN_RECORDS = frozenset({"relocate_progress"})


def canonical_dump(dsn: str, scope: str, skip_tables: frozenset[str] = frozenset()) -> Dump:
    """Every non-empty table: (kept columns, rows ordered by id, or sorted when id-less)."""
    dump: Dump = {}
    with psycopg.connect(dsn) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_type = 'BASE TABLE' ORDER BY table_name"
            )
        ]
        for table in tables:
            if table in skip_tables or table in RUN_RECORDS:
                continue
            all_columns = [
                name
                for (name,) in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
                    (table,),
                )
            ]
            dropped = random_columns(table, scope)
            kept = tuple(c for c in all_columns if c not in dropped)
            select = ", ".join(f'"{c}"' for c in kept)
            order = ' ORDER BY "id"' if "id" in all_columns else ""
            rows = conn.execute(f'SELECT {select} FROM "{table}"{order}').fetchall()
            if not order:
                rows.sort(key=repr)  # id-less tables (links, ledger): a canonical order
            if rows:
                dump[table] = (kept, rows)
    return dump


def assert_same_dump(actual: Dump, expected: Dump) -> None:
    """Table by table, so that a failure names the first table that differs."""
    assert sorted(actual) == sorted(expected)
    for table, (columns, rows) in expected.items():
        assert actual[table][0] == columns, table
        assert len(actual[table][1]) == len(rows), table
        for got, want in zip(actual[table][1], rows):
            assert got == want, f"{table}: {dict(zip(columns, got))} != {dict(zip(columns, want))}"


class Databases:
    """Creates databases on the test server (from a template) and drops them at the end."""

    def __init__(self, server_dsn: str, default_template: str) -> None:
        self._server = server_dsn
        self._template = default_template
        self._names: list[str] = []

    def create(self, template: str | None = None) -> str:
        """A new database copied from ``template`` (default: the schema template)."""
        template = template or self._template
        name = f"t_enc_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self._server, autocommit=True) as conn:
            # A template must have no other sessions: end any a finished import left behind.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (template,),
            )
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        self._names.append(name)
        return psycopg.conninfo.make_conninfo(self._server, dbname=name)

    def drop_all(self) -> None:
        with psycopg.connect(self._server, autocommit=True) as conn:
            for name in reversed(self._names):
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self._names.clear()


def dbname(dsn: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]  # type: ignore[return-value]


# --- Keys, tarballs, KMS -------------------------------------------------------------------


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def tar_members(tarball: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]


def make_tar(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@dataclass(frozen=True)
class Inputs:
    """Files every test may use: the plain export, tarballs, keys and KMS configs."""

    root: Path
    plain: Path
    local_tarball: Path
    kms_tarball: Path
    private_key: Path
    other_private_key: Path
    kms_config: Path
    kms: LocalKmsServer

    def write(self, name: str, content: bytes) -> Path:
        path = self.root / name
        path.write_bytes(content)
        return path

    def local_flags(self) -> tuple[str, ...]:
        return ("--decrypt-with", str(self.private_key))

    def kms_flags(self, config: Path | None = None) -> tuple[str, ...]:
        return (
            "--decrypt-with-gcp-kms",
            str(config or self.kms_config),
            "--gcp-kms-endpoint",
            self.kms.endpoint,
        )


@pytest.fixture(scope="module")
def kms_server() -> Iterator[LocalKmsServer]:
    with LocalKmsServer() as server:
        yield server


@pytest.fixture(scope="module")
def inputs(
    tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path, kms_server: LocalKmsServer
) -> Inputs:
    root = tmp_path_factory.mktemp("encrypted-import")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    plain = fixtures_dir / SNAPSHOT
    (root / "private.pem").write_bytes(private_pem(key))
    (root / "other.pem").write_bytes(private_pem(other))
    (root / "kms.json").write_text(json.dumps(kms_server.config))
    with plain.open("rb") as src, (root / "local.tar").open("wb") as dest:
        encrypt_export(src, dest, public_key_pem=public_pem(key))
    with plain.open("rb") as src, (root / "kms.tar").open("wb") as dest:
        encrypt_export(src, dest, kms_config=kms_server.config, kms_endpoint=kms_server.endpoint)
    return Inputs(
        root=root,
        plain=plain,
        local_tarball=root / "local.tar",
        kms_tarball=root / "kms.tar",
        private_key=root / "private.pem",
        other_private_key=root / "other.pem",
        kms_config=root / "kms.json",
        kms=kms_server,
    )


@pytest.fixture
def kms(inputs: Inputs) -> Iterator[LocalKmsServer]:
    """The module's KMS server, with its corruption switch off before and after."""
    inputs.kms.corrupt_response_checksum = False
    yield inputs.kms
    inputs.kms.corrupt_response_checksum = False


@pytest.fixture(scope="module")
def databases(pg_server: str, template_dsn: str) -> Iterator[Databases]:
    dbs = Databases(pg_server, dbname(template_dsn))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="module")
def prefilled_global(databases: Databases, inputs: Inputs) -> tuple[str, Dump]:
    """A database holding the plain snapshot imported in global scope, and its dump.

    It is the reference of the global-scope comparisons and the template of the
    databases the bad-input tests run on.
    """
    dsn = databases.create()
    run = import_export(dsn, "global", inputs.plain, "--silent")
    assert run.code == 0, run.err
    return dsn, canonical_dump(dsn, "global")


@pytest.fixture(scope="module")
def plain_dumps(
    databases: Databases, inputs: Inputs, prefilled_global: tuple[str, Dump]
) -> Callable[[str], Dump]:
    """The canonical dump of the plain snapshot imported in a scope (computed once)."""
    cache: dict[str, Dump] = {"global": prefilled_global[1]}

    def dump_of(scope: str) -> Dump:
        if scope not in cache:
            dsn = databases.create()
            run = import_export(dsn, scope, inputs.plain, "--silent")
            assert run.code == 0, run.err
            cache[scope] = canonical_dump(dsn, scope)
        return cache[scope]

    return dump_of


def import_with_findings(
    dsn: str, scope: str, src: str | Path, findings: Path, *flags: str
) -> ImportRun:
    return import_export(dsn, scope, src, "--findings-file", str(findings), *flags)


SLOW = pytest.mark.slow

# --- Behaviour 21: every scope, local key and KMS, same database as the plain file ---------


@pytest.mark.parametrize(
    "scope, method",
    [
        # The inner loop (-m "not slow") keeps one case; CI runs every scope and method.
        pytest.param(scope, method, marks=() if (scope, method) == ("users", "local") else SLOW)
        for method in ("local", "kms")
        for scope in SCOPES
    ],
)
def test_encrypted_export_imports_like_the_plain_one(
    scope: str,
    method: str,
    inputs: Inputs,
    kms: LocalKmsServer,
    databases: Databases,
    plain_dumps: Callable[[str], Dump],
    tmp_path: Path,
) -> None:
    """Spec 11.21, and the result is the plain import's database, row for row."""
    dsn = databases.create()
    findings = tmp_path / "findings.json"
    if method == "local":
        run = import_with_findings(
            dsn, scope, inputs.local_tarball, findings, *inputs.local_flags()
        )
    else:
        before = len(kms.requests)
        run = import_with_findings(dsn, scope, inputs.kms_tarball, findings, *inputs.kms_flags())
        assert [m for m, _ in kms.requests[before:]] == ["AsymmetricDecrypt"]
    assert run.code == 0, run.err
    assert findings.read_text() == "[]\n"
    assert json.loads(findings.read_text()) == []
    assert count(dsn, "auth_user") > 0
    assert_same_dump(canonical_dump(dsn, scope), plain_dumps(scope))


def test_global_scope_dump_keeps_sanitisable_columns(prefilled_global: tuple[str, Dump]) -> None:
    """The global comparison is not weakened: passwords and hashes are compared there."""
    columns, rows = prefilled_global[1]["auth_user"]
    assert "password" in columns and len(rows) == 10
    assert "validation_hash" in prefilled_global[1]["sentry_useremail"][0]


def test_encrypted_export_from_standard_input(
    inputs: Inputs,
    databases: Databases,
    prefilled_global: tuple[str, Dump],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """``SRC`` = ``-``: the tarball comes from stdin (``--no-prompt`` is given)."""

    class FakeStdin:
        buffer = io.BytesIO(inputs.local_tarball.read_bytes())

        def readline(self) -> str:  # the global prompt must not be asked
            raise AssertionError("prompted although --no-prompt was given")

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    dsn = databases.create()
    findings = tmp_path / "findings.json"
    run = import_with_findings(dsn, "global", "-", findings, *inputs.local_flags())
    assert run.code == 0, run.err
    assert json.loads(findings.read_text()) == []
    assert_same_dump(canonical_dump(dsn, "global"), prefilled_global[1])


# --- Bad input -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadInput:
    """One kind of bad input: how to build it, and what the import must say."""

    make: Callable[[Inputs], tuple[Path, tuple[str, ...]]]
    message: str
    exit_code: int = 1


def _tampered(inputs: Inputs) -> tuple[Path, tuple[str, ...]]:
    members = dict(tar_members(inputs.local_tarball.read_bytes()))
    token = bytearray(members["export.json"])
    middle = len(token) // 2
    token[middle] = ord("B") if token[middle] != ord("B") else ord("C")  # still base64
    members["export.json"] = bytes(token)
    return inputs.write("tampered.tar", make_tar(list(members.items()))), inputs.local_flags()


def _truncated(inputs: Inputs) -> tuple[Path, tuple[str, ...]]:
    tarball = inputs.local_tarball.read_bytes()
    return inputs.write("truncated.tar", tarball[: len(tarball) // 2]), inputs.local_flags()


def _with_unknown_member(inputs: Inputs) -> tuple[Path, tuple[str, ...]]:
    members = tar_members(inputs.local_tarball.read_bytes())
    members.append(("notes.txt", b"hello"))
    return inputs.write("unknown.tar", make_tar(members)), inputs.local_flags()


def _without_data_key(inputs: Inputs) -> tuple[Path, tuple[str, ...]]:
    members = [m for m in tar_members(inputs.local_tarball.read_bytes()) if m[0] != "data.key"]
    return inputs.write("missing.tar", make_tar(members)), inputs.local_flags()


def _kms_config(
    change: Callable[[dict[str, object]], dict[str, object]],
) -> Callable[[Inputs], tuple[Path, tuple[str, ...]]]:
    """A KMS config file: the server's own config, changed by ``change``."""

    def make(inputs: Inputs) -> tuple[Path, tuple[str, ...]]:
        config = change(dict(inputs.kms.config))
        path = inputs.write(f"kms-{uuid.uuid4().hex[:8]}.json", json.dumps(config).encode())
        return inputs.kms_tarball, inputs.kms_flags(path)

    return make


def _without_version(config: dict[str, object]) -> dict[str, object]:
    del config["version"]
    return config


BAD_INPUTS: dict[str, BadInput] = {
    "wrong-private-key": BadInput(
        lambda i: (i.local_tarball, ("--decrypt-with", str(i.other_private_key))),
        PUBLIC_KEY_MISMATCH,
    ),
    "tampered-token": BadInput(_tampered, TOKEN_TAMPERED),
    "truncated-tar": BadInput(_truncated, "truncated or corrupt tar archive"),
    "unknown-member": BadInput(_with_unknown_member, "Unknown tarball entity notes.txt"),
    "missing-member": BadInput(_without_data_key, f"{MISSING_MEMBER}: no data.key"),
    "encrypted-without-key": BadInput(lambda i: (i.local_tarball, ()), ENCRYPTED_INPUT_WITHOUT_KEY),
    "plain-with-key": BadInput(lambda i: (i.plain, i.local_flags()), PLAIN_INPUT_WITH_KEY),
    "kms-config-missing-field": BadInput(_kms_config(_without_version), KMS_CONFIG_FIELDS),
    "kms-config-extra-field": BadInput(
        _kms_config(lambda c: {**c, "keyring": "relocation"}), KMS_CONFIG_FIELDS
    ),
    "kms-config-non-string": BadInput(
        _kms_config(lambda c: {**c, "version": 1}), KMS_CONFIG_FIELDS
    ),
    "kms-bad-response-checksum": BadInput(
        lambda i: (i.kms_tarball, i.kms_flags()), KMS_RESPONSE_CORRUPTED
    ),
    "both-decrypt-flags": BadInput(
        lambda i: (i.local_tarball, (*i.local_flags(), *i.kms_flags())),
        DECRYPT_FLAGS_EXCLUSIVE,
        exit_code=2,
    ),
}


def run_bad_import(
    case: str, scope: str, dsn: str, inputs: Inputs, kms: LocalKmsServer, tmp_path: Path
) -> tuple[ImportRun, str]:
    """Runs the bad import ``case``; checks the message, exit code and findings file.

    Returns:
        The run, and the import UUID it was given.
    """
    bad = BAD_INPUTS[case]
    src, flags = bad.make(inputs)
    kms.corrupt_response_checksum = case == "kms-bad-response-checksum"
    findings = tmp_path / "findings.json"
    findings.write_text("left over from an earlier run\n")  # must be truncated
    import_uuid = uuid.uuid4().hex
    run = import_with_findings(dsn, scope, src, findings, "--import-uuid", import_uuid, *flags)
    assert run.code == bad.exit_code, run.err
    assert f"Error: {bad.message}" in run.err
    assert "Traceback" not in run.err
    assert findings.exists() and findings.stat().st_size == 0
    return run, import_uuid


def ledger_rows(dsn: str, import_uuid: str) -> int:
    """Rows that the import with this UUID wrote to the pk map and the report."""
    return sum(
        query(dsn, f"SELECT count(*) FROM {table} WHERE import_uuid = %s", (import_uuid,))[0][0]
        for table in ("relocate_pk_map", "relocate_report", "relocate_side_effect")
    )


@pytest.fixture(scope="module")
def survivor(databases: Databases, prefilled_global: tuple[str, Dump]) -> str:
    """A copy of the prefilled database that every bad global import is run against.

    One copy for all of them (a database costs a checkpoint to drop): each test checks
    that it is still exactly the prefilled database, so none depends on another.
    """
    return databases.create(template=dbname(prefilled_global[0]))


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_in_global_scope_fails_cleanly_without_wiping(
    case: str,
    inputs: Inputs,
    kms: LocalKmsServer,
    survivor: str,
    prefilled_global: tuple[str, Dump],
    tmp_path: Path,
) -> None:
    """A clear error, non-zero exit, empty findings file; the existing data untouched."""
    dsn, before = survivor, prefilled_global[1]
    _, import_uuid = run_bad_import(case, "global", dsn, inputs, kms, tmp_path)
    assert count(dsn, "auth_user") == 10
    assert ledger_rows(dsn, import_uuid) == 0
    # relocate_import records the attempt itself; everything else is as it was.
    skip = frozenset({"relocate_import"})
    assert_same_dump(
        canonical_dump(dsn, "global", skip),
        {t: v for t, v in before.items() if t not in skip},
    )


@pytest.mark.parametrize(
    ("case", "scope"),
    [
        ("wrong-private-key", "users"),
        ("tampered-token", "organizations"),
        ("kms-bad-response-checksum", "config"),
    ],
)
def test_bad_input_writes_nothing_to_an_empty_database(
    case: str, scope: str, inputs: Inputs, kms: LocalKmsServer, db_dsn: str, tmp_path: Path
) -> None:
    """The other scopes: not a row written, not a pk-map entry."""
    run_bad_import(case, scope, db_dsn, inputs, kms, tmp_path)
    assert count(db_dsn, "auth_user") == 0
    assert count(db_dsn, "relocate_pk_map") == 0
    assert canonical_dump(db_dsn, scope, frozenset({"relocate_import"})) == {}


def test_bad_input_error_is_one_clean_line(
    inputs: Inputs,
    kms: LocalKmsServer,
    db_dsn: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The error is the cause's own text, not buried under a logged Beam traceback."""
    with caplog.at_level(logging.ERROR):
        run, _ = run_bad_import("wrong-private-key", "users", db_dsn, inputs, kms, tmp_path)
    assert f"Error: {PUBLIC_KEY_MISMATCH}\n" in run.err
    assert "[while running" not in run.err
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
