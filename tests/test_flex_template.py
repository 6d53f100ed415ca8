"""The Dataflow Flex Template: its metadata agrees with the CLI, its launcher maps onto it.

``dataflow/metadata.json`` is what Dataflow validates a launch's parameters against, and
``relocate.cli.flex`` (run by ``dataflow/main.py``) turns them into ``relocate import`` flags.
Both are checked against the CLI's own parser, so a flag added to the CLI fails here until
the template declares it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from relocate.cli.flex import (
    TemplateParameterError,
    cli_arguments,
    import_flags,
    main,
    parameter_name,
    scope_parsers,
)
from relocate.cli.main import SCOPES
from tests.helpers import count, import_export, query, user, write_export

REPO = Path(__file__).resolve().parents[1]
METADATA = REPO / "dataflow" / "metadata.json"

# Hidden (argparse.SUPPRESS) flags the template does not declare, and why.
NOT_IN_TEMPLATE = {
    "inject_fault": "deliberate faults for the reliability tests",
    "gcp_kms_endpoint": "a local fake of the KMS API, for tests",
    "secret_manager_endpoint": "a local fake of the Secret Manager API, for tests",
    "batch_size": "rows per write transaction, a tuning knob the tests turn",
}
TEMPLATE_ONLY = {"scope", "src"}  # the subcommand and its positional argument
# Flags the launcher sets itself, and why.
SET_BY_LAUNCHER = {"detach": "a launcher must exit once the job is submitted"}


def metadata_parameters() -> dict[str, dict]:
    parameters = json.loads(METADATA.read_text(encoding="utf-8"))["parameters"]
    by_name = {p["name"]: p for p in parameters}
    assert len(by_name) == len(parameters), "a parameter is declared twice"
    return by_name


def cli_flags() -> dict[str, dict[str, argparse.Action]]:
    """Parameter name -> {scope: action}, over the four ``relocate import`` scopes."""
    flags: dict[str, dict[str, argparse.Action]] = {}
    for scope, parser in scope_parsers().items():
        for name, action in import_flags(parser).items():
            flags.setdefault(name, {})[scope] = action
    return flags


def test_every_scope_is_introspected() -> None:
    assert list(scope_parsers()) == list(SCOPES)


def test_metadata_declares_every_cli_flag_and_nothing_else() -> None:
    declared = set(metadata_parameters()) - TEMPLATE_ONLY
    visible = {name for name in cli_flags() if name not in NOT_IN_TEMPLATE | SET_BY_LAUNCHER.keys()}
    assert sorted(visible - declared) == [], "CLI flags the template does not declare"
    assert sorted(declared - visible) == [], "template parameters that are no CLI flag"


def test_only_hidden_test_flags_are_left_out() -> None:
    flags = cli_flags()
    hidden = {
        name
        for name, actions in flags.items()
        if all(a.help == argparse.SUPPRESS for a in actions.values())
    }
    # A new hidden flag needs a decision here; a flag made visible must join the template.
    assert hidden == set(NOT_IN_TEMPLATE)


def test_metadata_parameters_match_the_flags_kind_and_scopes() -> None:
    parameters, flags = metadata_parameters(), cli_flags()
    assert parameters["scope"]["regexes"] == [f"^({'|'.join(SCOPES)})$"]
    assert not parameters["scope"]["isOptional"] and not parameters["src"]["isOptional"]
    for name, actions in flags.items():
        if name in NOT_IN_TEMPLATE or name in SET_BY_LAUNCHER:
            continue
        parameter = parameters[name]
        assert parameter["isOptional"] is True, name
        assert parameter["label"] and parameter["helpText"], name
        (kind,) = {a.nargs == 0 for a in actions.values()}
        assert (parameter.get("regexes") == ["^(true|false)$"]) is kind, name
        if len(actions) < len(SCOPES):  # the help says where it applies
            scopes = ", ".join(s for s in SCOPES if s in actions)
            assert parameter["helpText"].endswith(f"({scopes} only)."), name


def test_launcher_maps_parameters_onto_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEX_TEMPLATE_PYTHON_SETUP_FILE", raising=False)
    arguments = cli_arguments(
        [
            "--scope=organizations",
            "--src=gs://b/export.tar",
            "--dsn=host=10.0.0.5 dbname=sentry user=relocate",
            "--db_password_secret=projects/p/secrets/pw",
            "--merge_users=true",
            "--no_prompt=FALSE",
            "--filter_org_slugs=a,b",
            "--findings_file=gs://b/findings.json",
            "--report_file=",  # an unset optional parameter
            "--max_db_connections=8",
            "--project=p",
            "--region=europe-west1",
            "--temp_location=gs://b/tmp",
        ]
    )
    assert arguments == [
        "import",
        "organizations",
        "gs://b/export.tar",
        "--dsn",
        "host=10.0.0.5 dbname=sentry user=relocate",
        "--db-password-secret",
        "projects/p/secrets/pw",
        "--merge-users",
        "--filter-org-slugs",
        "a,b",
        "--findings-file",
        "gs://b/findings.json",
        "--max-db-connections",
        "8",
        "--detach",
        "--runner=DataflowRunner",
        "--project=p",
        "--region=europe-west1",
        "--temp_location=gs://b/tmp",
    ]


def test_launcher_keeps_a_given_runner_and_adds_the_image_s_setup_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLEX_TEMPLATE_PYTHON_SETUP_FILE", "/template/setup.py")
    assert cli_arguments(["--src=gs://b/e.json", "--runner=FnApiRunner", "--scope=global"]) == [
        "import",
        "global",
        "gs://b/e.json",
        "--detach",
        "--runner=FnApiRunner",
        "--setup_file=/template/setup.py",
    ]
    given = cli_arguments(["--scope=config", "--src=x", "--setup_file=/other/setup.py"])
    assert given[-2:] == ["--runner=DataflowRunner", "--setup_file=/other/setup.py"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--src=gs://b/e.json"], "scope must be one of users, organizations, config, global"),
        (["--scope=tenants", "--src=gs://b/e.json"], "got 'tenants'"),
        (["--scope=users"], "src is required"),
        (["--scope=users", "--src=x", "--merge_users=yes"], "merge_users must be 'true'"),
        (["--scope=users", "--src=x", "--dsn"], "dsn needs a value"),
        (
            ["--scope=users", "--src=x", "--geoip_db=gs://b/geo.mmdb"],
            "geoip_db is not a flag of `relocate import users` (only of organizations, global)",
        ),
    ],
)
def test_launcher_refuses_what_the_cli_would_not_take(argv: list[str], message: str) -> None:
    with pytest.raises(TemplateParameterError, match=re.escape(message)):
        cli_arguments(argv)


def test_launched_import_runs_with_the_mapped_flags(
    db_dsn: str, fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mapped arguments go through the real CLI parser and import (local runner here).
    monkeypatch.delenv("FLEX_TEMPLATE_PYTHON_SETUP_FILE", raising=False)
    findings = tmp_path / "findings.json"
    code = main(
        [
            "--scope=users",
            f"--src={fixtures_dir / 'fresh-install.json'}",
            f"--dsn={db_dsn}",
            "--no_prompt=true",
            "--merge_users=false",
            f"--findings_file={findings}",
            "--silent=true",
            "--runner=FnApiRunner",
        ]
    )
    assert code == 0
    # Detached: the pipeline itself concluded the import and wrote the findings file.
    assert json.loads(findings.read_text()) == []
    assert query(db_dsn, "SELECT status FROM relocate_import") == [("done",)]
    assert count(db_dsn, "auth_user") == 2  # fresh-install.json's two users


def test_detached_import_with_a_finding_records_failure_and_writes_the_files(
    db_dsn: str, tmp_path: Path
) -> None:
    findings, report = tmp_path / "findings.json", tmp_path / "report.json"
    findings.write_text("stale")
    src = write_export(tmp_path / "long.json", [user(7, "x" * 129)])
    run = import_export(
        db_dsn,
        "users",
        src,
        "--detach",
        "--findings-file",
        str(findings),
        "--report-file",
        str(report),
    )
    assert run.code == 0, run.err  # submitted; the outcome is the job's
    assert "submitted" in run.err
    (finding,) = json.loads(findings.read_text())
    assert (finding["kind"], finding["left_pk"]) == ("ValidationError", 7)
    rows = json.loads(report.read_text())["rows"]
    assert [(r["model"], r["action"]) for r in rows] == [("sentry.user", "error")]
    assert query(db_dsn, "SELECT status FROM relocate_import") == [("failed",)]
    assert count(db_dsn, "auth_user") == 0


def test_detach_refuses_standard_input(db_dsn: str) -> None:
    run = import_export(db_dsn, "users", "-", "--detach")
    assert run.code == 2
    assert "--detach cannot read the export from standard input" in run.err


def test_template_entry_point_runs_the_launcher() -> None:
    # What Dataflow's launcher does: python FLEX_TEMPLATE_PYTHON_PY_FILE --name=value ...
    done = subprocess.run(
        [sys.executable, str(REPO / "dataflow" / "main.py"), "--scope=users"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "Error: src is required: the export to import (gs://...)",
    )


def test_parameter_names_are_the_flags_with_underscores() -> None:
    assert parameter_name("--db-password-secret") == "db_password_secret"
