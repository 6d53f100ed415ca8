"""Issue 16: hostile values and hostile use of the command line.

* 04: a value of the wrong shape (a list or an object where admission or the legacy-owner
  resolution reads a scalar) is a ValidationError finding naming the row, never a traceback.
* 05: every unique secret column of an API token goes through the collision rule; the hashed
  columns follow the secrets.
* 11: text from the export is escaped in everything printed and logged; the JSON files keep
  it exactly.
* 12: numeric options below 1 are refused.
* 13: Ctrl-C ends the import with one line saying how to resume it, exit status 130.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    TS,
    TWO_WORKERS,
    apitoken,
    import_export,
    member,
    query,
    row,
    run_cli,
    scalar,
    user,
    useroption,
    write_export,
    write_rsa_key,
)

REPO = Path(__file__).resolve().parent.parent


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _org(pk: int, slug: Any, name: str = "org") -> dict:
    return row(
        "sentry.organization",
        pk,
        name=name,
        slug=slug,
        status=0,
        date_added=TS,
        default_role="member",
        flags="1",
        is_test=False,
    )


def _alertrule(pk: int, owner: Any) -> dict:
    return row(
        "sentry.alertrule",
        pk,
        organization=1,
        snuba_query=None,
        team=None,
        user_id=None,
        name=f"rule {pk}",
        status=0,
        threshold_type=0,
        resolve_threshold=None,
        threshold_period=1,
        comparison_delta=None,
        date_modified=TS,
        date_added=TS,
        monitor_type=0,
        description=None,
        owner=owner,
    )


def _rule(pk: int, owner: Any) -> dict:
    return row(
        "sentry.rule",
        pk,
        project=1,
        environment_id=None,
        label=f"rule {pk}",
        data="{}",
        status=0,
        source=0,
        owner_user_id=None,
        owner_team=None,
        date_added=TS,
        owner=owner,
    )


def _actor(pk: int, user_id: Any = None, team: Any = None) -> dict:
    return row("sentry.actor", pk, type=0 if team is None else 1, user_id=user_id, team=team)


def _findings(path: Path) -> list[dict]:
    return json.loads(path.read_text())


def _nothing_written(dsn: str) -> None:
    assert scalar(dsn, "SELECT count(*) FROM relocate_pk_map") == 0
    assert scalar(dsn, "SELECT count(*) FROM auth_user") == 0
    assert scalar(dsn, "SELECT count(*) FROM sentry_organization") == 0


# ------------------------------------------------------------------------------------------
# 16.04: values of the wrong shape


ANCHOR = user(1, "anchor")

#: (scope, flags, rows, the row the finding must name, words its reason must contain)
WRONG_SHAPES = {
    "username_list_with_username_filter": (
        "users",
        ["--filter-usernames", "anchor,alice"],
        [ANCHOR, user(2, ["alice"], email="alice@example.com")],
        ("sentry.user", 2),
        ("username", "string", "['alice']"),
    ),
    "username_object_with_username_filter": (
        "users",
        ["--filter-usernames", "anchor,alice"],
        [ANCHOR, user(2, {"name": "alice"}, email="alice@example.com")],
        ("sentry.user", 2),
        ("username", "string"),
    ),
    "username_list_without_filter": (
        "users",
        [],
        [ANCHOR, user(2, ["alice"], email="alice@example.com")],
        ("sentry.user", 2),
        ("username", "string"),
    ),
    "user_email_object_with_username_filter": (
        "users",
        ["--filter-usernames", "anchor,alice"],
        [ANCHOR, user(2, "alice", email={"address": "alice@example.com"})],
        ("sentry.user", 2),
        ("email", "string"),
    ),
    "email_list_with_username_filter": (
        "users",
        ["--filter-usernames", "anchor"],
        [ANCHOR, row("sentry.email", 1, email=["anchor@example.com"], date_added=TS)],
        ("sentry.email", 1),
        ("email", "string"),
    ),
    "org_slug_object_with_slug_filter": (
        "organizations",
        ["--filter-org-slugs", "good"],
        [ANCHOR, _org(1, {"slug": "good"}), _org(2, "good")],
        ("sentry.organization", 1),
        ("slug", "string"),
    ),
    "org_slug_list_with_slug_filter": (
        "organizations",
        ["--filter-org-slugs", "good"],
        [ANCHOR, _org(1, "good"), _org(2, ["good"])],
        ("sentry.organization", 2),
        ("slug", "string"),
    ),
    "member_organization_list_with_slug_filter": (
        "organizations",
        ["--filter-org-slugs", "good"],
        [ANCHOR, _org(1, "good"), member(1, [1], 1)],
        ("sentry.organizationmember", 1),
        ("organization", "integer"),
    ),
    "rule_owner_list": (
        "organizations",
        [],
        [ANCHOR, _org(1, "good"), _actor(50, user_id=1), _rule(1, [50])],
        ("sentry.rule", 1),
        ("owner", "integer"),
    ),
    "alertrule_owner_object": (
        "organizations",
        [],
        [ANCHOR, _org(1, "good"), _actor(50, user_id=1), _alertrule(1, {"id": 50})],
        ("sentry.alertrule", 1),
        ("owner", "integer"),
    ),
    "actor_user_list_behind_an_owner": (
        "organizations",
        [],
        [ANCHOR, _org(1, "good"), _actor(50, user_id=[1]), _alertrule(1, 50)],
        ("sentry.alertrule", 1),
        ("owner", "actor 50", "user_id"),
    ),
    "actor_team_object_behind_an_owner": (
        "organizations",
        [],
        [ANCHOR, _org(1, "good"), _actor(51, team={"id": 3}), _rule(1, 51)],
        ("sentry.rule", 1),
        ("owner", "actor 51", "team"),
    ),
    "apitoken_application_list": (
        "config",
        [],
        [ANCHOR, apitoken(1, 1, "t" * 64, application=[1])],
        ("sentry.apitoken", 1),
        ("application", "integer"),
    ),
    "savedsearch_is_global_object": (
        "organizations",
        [],
        [
            ANCHOR,
            _org(1, "good"),
            row(
                "sentry.savedsearch",
                1,
                organization=1,
                type=0,
                name="s",
                query="is:unresolved",
                is_global={"x": 1},
                date_added=TS,
            ),
        ],
        ("sentry.savedsearch", 1),
        ("is_global", "boolean"),
    ),
    "notificationaction_integration_list": (
        "organizations",
        [],
        [
            ANCHOR,
            _org(1, "good"),
            row(
                "sentry.notificationaction",
                1,
                organization=1,
                integration_id=[7],
                sentry_app_id=None,
                type=0,
                target_type=0,
                target_identifier=None,
                target_display=None,
                trigger_type=0,
            ),
        ],
        ("sentry.notificationaction", 1),
        ("integration_id", "integer"),
    ),
}


@pytest.mark.parametrize("case", sorted(WRONG_SHAPES))
def test_16_04_wrong_shape_is_a_finding(db_dsn, tmp_path, case):
    scope, flags, rows, (model, ordinal), words = WRONG_SHAPES[case]
    findings = tmp_path / "findings.json"
    run = import_export(
        db_dsn,
        scope,
        write_export(tmp_path / "e.json", rows),
        "--findings-file",
        str(findings),
        *flags,
    )
    assert run.code == 1, run.err
    assert "Traceback" not in run.err
    named = [
        f for f in _findings(findings) if (f["on"]["model"], f["on"]["ordinal"]) == (model, ordinal)
    ]
    assert named, _findings(findings)
    assert named[0]["kind"] == "ValidationError"
    assert all(w.lower() in named[0]["reason"].lower() for w in words), named[0]["reason"]
    _nothing_written(db_dsn)


def test_16_04_well_shaped_owners_and_filters_still_resolve(db_dsn, tmp_path):
    """The shape checks do not change what well-formed values do."""
    rows = [
        ANCHOR,
        user(2, "alice"),
        _org(1, "good"),
        _org(2, "other"),
        member(1, 1, 2),
        member(2, 2, 1),
        _actor(50, user_id=2),
        _alertrule(1, 50),
    ]
    run = import_export(
        db_dsn,
        "organizations",
        write_export(tmp_path / "e.json", rows),
        "--filter-org-slugs",
        "good",
    )
    assert run.code == 0, run.err
    assert query(db_dsn, "SELECT slug FROM sentry_organization") == [("good",)]
    assert query(
        db_dsn, "SELECT u.username FROM sentry_alertrule a JOIN auth_user u ON u.id = a.user_id"
    ) == [("alice",)]


# ------------------------------------------------------------------------------------------
# 16.05: unique secret columns of API tokens


T1, R1 = "sntryu_" + "1" * 64, "2" * 64
T2, R2 = "sntryu_" + "3" * 64, "4" * 64


def _token(pk: int, **fields: Any) -> dict:
    """An API token of user 1 (``_ABSENT``: the field is left out of the row)."""
    token = apitoken(pk, 1, T1)
    token["fields"].update(fields)
    if isinstance(token["fields"].get("token"), str):
        token["fields"]["token_last_characters"] = token["fields"]["token"][-4:]
    for name, value in list(token["fields"].items()):
        if value is _ABSENT:
            del token["fields"][name]
    return token


_ABSENT = object()

#: The second import's token: each shares one unique value with the first import's.
SECRET_COLLISIONS = {
    "token_null_hashed_token_taken": dict(token=None, hashed_token=_sha256(T1)),
    "token_absent_hashed_token_taken": dict(token=_ABSENT, hashed_token=_sha256(T1)),
    "token_new_hashed_token_taken": dict(token=T2, hashed_token=_sha256(T1)),
    "token_taken": dict(token=T1, hashed_token=_sha256(T1)),
    "token_taken_hash_missing": dict(token=T1, hashed_token=None),
    "refresh_token_taken": dict(
        token=T2, hashed_token=_sha256(T2), refresh_token=R1, hashed_refresh_token=_sha256(R1)
    ),
    "refresh_null_hashed_refresh_taken": dict(
        token=T2, hashed_token=_sha256(T2), refresh_token=None, hashed_refresh_token=_sha256(R1)
    ),
    "refresh_absent_hashed_refresh_taken": dict(
        token=T2, hashed_token=_sha256(T2), refresh_token=_ABSENT, hashed_refresh_token=_sha256(R1)
    ),
    "refresh_new_hashed_refresh_taken": dict(
        token=T2, hashed_token=_sha256(T2), refresh_token=R2, hashed_refresh_token=_sha256(R1)
    ),
}

UNIQUE_SECRETS = ("token", "hashed_token", "refresh_token", "hashed_refresh_token")


@pytest.fixture(scope="module")
def first_token_imported(database_from, tmp_path_factory):
    """A target holding the first import's token (imported once; each case gets a copy)."""
    first = _token(
        1,
        token=T1,
        hashed_token=_sha256(T1),
        refresh_token=R1,
        hashed_refresh_token=_sha256(R1),
        expires_at="2030-01-01T00:00:00Z",
    )
    src = write_export(tmp_path_factory.mktemp("first") / "1.json", [ANCHOR, first])
    with database_from(None, prefix="first_token") as dsn:
        run = import_export(dsn, "config", src)
        assert run.code == 0, run.err
        yield dsn


@pytest.mark.parametrize(
    "case",
    [
        # The inner loop (-m "not slow") keeps one case; CI runs them all.
        pytest.param(c, marks=() if c == "token_taken" else pytest.mark.slow)
        for c in sorted(SECRET_COLLISIONS)
    ],
)
def test_16_05_every_unique_secret_column_goes_through_the_collision_rule(
    first_token_imported, database_from, tmp_path, case
):
    with database_from(first_token_imported) as db_dsn:
        _second_token_import(db_dsn, tmp_path, case)


def _second_token_import(db_dsn: str, tmp_path: Path, case: str) -> None:
    columns = ", ".join(("id", *UNIQUE_SECRETS, "token_last_characters"))
    (before,) = query(db_dsn, f"SELECT {columns} FROM sentry_apitoken")

    second = _token(1, expires_at="2030-01-01T00:00:00Z", **SECRET_COLLISIONS[case])
    findings = tmp_path / "findings.json"
    run = import_export(
        db_dsn,
        "config",
        write_export(tmp_path / "2.json", [ANCHOR, second]),
        "--findings-file",
        str(findings),
    )
    assert run.code == 0, run.err
    assert _findings(findings) == []

    rows = query(db_dsn, f"SELECT {columns} FROM sentry_apitoken ORDER BY id")
    assert rows[0] == before  # the existing token is untouched
    new = dict(zip(("id", *UNIQUE_SECRETS, "last"), rows[1]))
    for i, column in enumerate(UNIQUE_SECRETS, start=1):
        assert new[column] is None or new[column] != before[i], column
    # The hashes describe the secrets the row holds.
    assert new["hashed_token"] == _sha256(new["token"])
    assert new["last"] == new["token"][-4:]
    expected = None if new["refresh_token"] is None else _sha256(new["refresh_token"])
    assert new["hashed_refresh_token"] == expected


def test_16_05_tokens_without_collision_keep_their_values(db_dsn, tmp_path):
    token = _token(
        1, token=T2, hashed_token=_sha256(T2), refresh_token=R2, hashed_refresh_token=_sha256(R2)
    )
    run = import_export(db_dsn, "config", write_export(tmp_path / "1.json", [ANCHOR, token]))
    assert run.code == 0, run.err
    assert query(
        db_dsn,
        "SELECT token, hashed_token, refresh_token, hashed_refresh_token FROM sentry_apitoken",
    ) == [(T2, _sha256(T2), R2, _sha256(R2))]


# ------------------------------------------------------------------------------------------
# 16.11: terminal injection

#: Characters a terminal acts on: C0 (ESC, CR, BEL, backspace), DEL, C1 (CSI), bidi
#: overrides and isolates, line/paragraph separators, a lone surrogate.
HOSTILE_CHARS = (
    "\x1b",
    "\r",
    "\x07",
    "\x08",
    "\x7f",
    "\x9b",
    "\x85",
    "\u202e",
    "\u2066",
    "\u200f",
    "\u2028",
    "\u2029",
    "\ud800",
    "\x00",
    "\n",
    "\t",
)


@pytest.mark.parametrize("char", HOSTILE_CHARS, ids=[f"U+{ord(c):04X}" for c in HOSTILE_CHARS])
def test_16_11_terminal_safe_escapes_control_characters(char):
    from relocate.cli.terminal import terminal_safe

    text = terminal_safe(f"a{char}b")
    assert char not in text
    assert text.isprintable() and text.startswith("a") and text.endswith("b")
    assert text.encode("ascii", "backslashreplace")  # encodable whatever the terminal


def test_16_11_terminal_safe_keeps_printable_text():
    from relocate.cli.terminal import terminal_safe

    assert terminal_safe("sentry.user: café – 東京 ok\\x1b") == "sentry.user: café – 東京 ok\\x1b"


def test_16_11_log_lines_are_escaped():
    from relocate.cli.terminal import SafeFormatter

    formatter = SafeFormatter("%(message)s")
    record = logging.LogRecord(
        "relocate.write",
        logging.WARNING,
        __file__,
        1,
        "batch of %s failed (%s)",
        ("x\x1b[2Jy", "a\nFAKE\u202e"),
        None,
    )
    line = formatter.format(record)
    assert "\n" not in line and "\x1b" not in line and "\u202e" not in line
    assert "\\x1b[2J" in line and "\\n" in line


def _tarball_withmember(path: Path, name: str) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w") as tar:
        for member in (name, "export.json"):
            info = tarfile.TarInfo(member)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"[]"))
    return path


@pytest.mark.parametrize("command", ["import", "backup"])
def test_16_11_tarball_member_names_are_escaped_in_errors(db_dsn, tmp_path, capsys, command):
    tarball = _tarball_withmember(tmp_path / "e.tar", "\x1b[2J\u202eevil\nFAKE")
    key, _ = write_rsa_key(tmp_path)
    if command == "import":
        run = import_export(db_dsn, "users", tarball, "--decrypt-with", str(key))
        code, err = run.code, run.err
    else:
        code = run_cli(
            "backup",
            "decrypt",
            str(tmp_path / "out.json"),
            "--src",
            str(tarball),
            "--decrypt-with",
            str(key),
        ).code
        err = capsys.readouterr().err
    assert code == 1, err
    # (The import's one-line error keeps the first line of the message: up to the newline.)
    assert "Unknown tarball entity \\x1b[2J\\u202eevil" in err
    _assert_terminal_clean(err)
    assert not any(line.startswith("FAKE") for line in err.splitlines())


EVIL_MODELS = (
    "sentry.\x1b[31mred\x1b[0m",
    "sentry.x\nrows not imported: 0",  # model names are read lower-case
    "sentry.\u202eresu",
    "sentry.\x9b2jc1\x7f",
    "sentry.bell\x07\x08\r",
)


def _assert_terminal_clean(err: str) -> None:
    for char in ("\x1b", "\x9b", "\x7f", "\u202e", "\x07", "\x08", "\r"):
        assert char not in err, repr(char)
    assert not any(line.startswith("rows not imported: 0") for line in err.splitlines())


def test_16_11_model_names_are_escaped_in_summary_and_skip_lines(db_dsn, tmp_path):
    rows = [ANCHOR, *(row(m, i, username="x") for i, m in enumerate(EVIL_MODELS, 1))]
    report = tmp_path / "report.json"
    run = import_export(
        db_dsn, "users", write_export(tmp_path / "e.json", rows), "--report-file", str(report)
    )
    assert run.code == 0, run.err
    _assert_terminal_clean(run.err)
    assert "sentry.\\x1b[31mred\\x1b[0m" in run.err
    assert "sentry.x\\nrows not imported: 0" in run.err
    assert "sentry.\\u202eresu" in run.err
    # The report file keeps the exact names (JSON-escaped).
    text = report.read_text()
    assert "\x1b" not in text and "\u202e" not in text
    assert {r["model"] for r in json.loads(text)["rows"]} == set(EVIL_MODELS)


def test_16_11_findings_are_escaped_on_stderr_and_exact_in_the_file(db_dsn, tmp_path):
    evil = "\x1b]0;pwned\x07\x1b[2J\nFAKE line\u202e"
    rows = [
        ANCHOR,
        useroption(1, 1, "timezone", json.dumps(evil)),
        {"model": EVIL_MODELS[0], "pk": "not-a-pk", "fields": {}},
    ]
    findings = tmp_path / "findings.json"
    run = import_export(
        db_dsn, "users", write_export(tmp_path / "e.json", rows), "--findings-file", str(findings)
    )
    assert run.code == 1, run.err
    _assert_terminal_clean(run.err)
    assert not any(line.startswith("FAKE line") for line in run.err.splitlines())
    assert "sentry.\\x1b[31mred\\x1b[0m" in run.err
    text = findings.read_text()
    assert "\x1b" not in text and "\u202e" not in text
    found = _findings(findings)
    assert {f["on"]["model"] for f in found} == {"sentry.useroption", EVIL_MODELS[0]}
    assert any(evil in f["reason"] for f in found)  # the exact value, JSON-escaped


# ------------------------------------------------------------------------------------------
# 16.12: numeric options below 1


IMPORT_NUMERIC = ("--batch-size", "--max-db-connections")


@pytest.mark.parametrize("value", ["0", "-1", "-100", "abc", "1.5"])
@pytest.mark.parametrize("flag", IMPORT_NUMERIC)
@pytest.mark.parametrize("scope", ["users", "organizations", "config", "global"])
def test_16_12_import_refuses_numbers_below_one(tmp_path, scope, flag, value):
    src = write_export(tmp_path / "e.json", [ANCHOR])
    with pytest.raises(SystemExit) as exit_:
        run_cli("import", scope, str(src), "--dsn", "dbname=nowhere", "--no-prompt", flag, value)
    assert exit_.value.code == 2


@pytest.mark.parametrize("value", ["0", "-1", "-100"])
def test_16_12_generate_refuses_rows_below_one(tmp_path, value):
    # ``generate`` checks --rows itself (exit 2, nothing written).
    assert run_cli("generate", str(tmp_path / "out.json"), "--rows", value).code == 2
    assert list(tmp_path.iterdir()) == []


def test_16_12_every_integer_option_is_checked():
    """No option of the CLI parses a plain ``int``: each takes a checked type."""
    import argparse

    from relocate.cli.parser import build_parser

    def actions(parser: argparse.ArgumentParser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from actions(sub)
            else:
                yield action

    # --seed takes any integer; generate checks --rows itself (the test above).
    plain = sorted({a.dest for a in actions(build_parser()) if a.type is int} - {"seed", "rows"})
    assert plain == []


def test_16_12_batch_size_one_still_imports(db_dsn, tmp_path):
    src = write_export(tmp_path / "e.json", [ANCHOR, user(2, "b")])
    run = import_export(db_dsn, "users", src, "--batch-size", "1")
    assert run.code == 0, run.err
    assert scalar(db_dsn, "SELECT count(*) FROM auth_user") == 2


# ------------------------------------------------------------------------------------------
# 16.13: Ctrl-C


def _wait_for(predicate, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_16_13_interruption_is_recognised_through_beams_wrapping():
    from relocate.cli.common import was_interrupted

    def beam_style() -> None:
        # What Beam's DoFnRunner does with an exception it cannot re-create with its note.
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("KeyboardInterrupt [while running 'Stage1/Write']") from None

    def chained() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("KeyboardInterrupt [while running 'Stage1/Write']")  # noqa: B904

    for raiser in (beam_style, chained):
        with pytest.raises(RuntimeError) as caught:
            raiser()
        assert was_interrupted(caught.value)
    assert was_interrupted(KeyboardInterrupt())
    assert not was_interrupted(RuntimeError("boom"))
    assert not was_interrupted(ValueError("KeyboardInterrupt in a value"))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("workers", [(), TWO_WORKERS], ids=["in-process", "two-workers"])
def test_16_13_ctrl_c_prints_one_line_and_the_import_resumes(db_dsn, tmp_path, workers):
    """Ctrl-C in a terminal reaches the whole process group: the launcher and, for a large
    export, its worker processes. One line, nothing left running, and it resumes."""
    export = tmp_path / "export.json"
    run = run_cli("generate", str(export), "--rows", "40000", "--quiet")
    assert run.code == 0, run.err
    err_path = tmp_path / "stderr.txt"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "relocate.cli.main",
                "import",
                "organizations",
                str(export),
                "--dsn",
                db_dsn,
                "--no-prompt",
                *workers,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=REPO,
            env=env,
            start_new_session=True,  # its own process group, as a terminal's job
        )
    try:
        line = _wait_for(
            lambda: next(
                (x for x in err_path.read_text().splitlines() if x.startswith("Import UUID: ")),
                None,
            ),
            120,
            "the import UUID line",
        )
        import_uuid = line.split(": ", 1)[1].strip()
        # Mid-import: the first rows are in the ledger.
        _wait_for(
            lambda: scalar(
                db_dsn,
                "SELECT count(*) FROM relocate_pk_map WHERE import_uuid = %s",
                (import_uuid,),
            ),
            300,
            "the first committed rows",
        )
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=120)
        _wait_for(lambda: not _group_alive(proc.pid), 30, "the worker processes to end")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err_path.read_text()
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "Warning" not in err, err  # the workers start without a word
    interrupted = [x for x in err.splitlines() if "interrupted" in x.lower()]
    assert len(interrupted) == 1, err
    assert f"--import-uuid {import_uuid}" in interrupted[0]
    assert "rollback" in interrupted[0]
    assert interrupted[0] == err.rstrip("\n").splitlines()[-1]  # the last thing said

    findings = tmp_path / "findings.json"
    resumed = import_export(
        db_dsn,
        "organizations",
        export,
        "--import-uuid",
        import_uuid,
        "--findings-file",
        str(findings),
    )
    assert resumed.code == 0, resumed.err
    assert _findings(findings) == []
    rows = json.loads(export.read_text())
    users = sum(r["model"] == "sentry.user" for r in rows)
    orgs = sum(r["model"] == "sentry.organization" for r in rows)
    assert scalar(db_dsn, "SELECT count(*) FROM auth_user") == users
    assert scalar(db_dsn, "SELECT count(*) FROM sentry_organization") == orgs
    assert (
        scalar(db_dsn, "SELECT status FROM relocate_import WHERE import_uuid = %s", (import_uuid,))
        == "done"
    )
