"""A corpus of broken and hostile Sentry exports, with the outcome each must have.

Each ``Case`` names a small builder that writes the export into a directory, the scope to
import it in, and what must happen (``tests/test_hostile.py`` runs them all):

* ``error``: exit 1. Either a fatal read error (``message``: ``Error: ...`` on stderr, no
  finding) or findings (``findings``: each names its model, ordinal and cause). Nothing
  at all is written to the database.
* ``skip`` / ``drop``: exit 0; the report file names each skipped/dropped row with its
  reason (``report``), and only the valid rows are written (``counts``).
* ``ok``: exit 0; the hostile part is harmless (ignored, or stored literally) and the
  valid rows are written (``counts``).

Rows the corpus treats as valid ride along with the hostile ones (``anchor`` users), so
an "error" case also checks that one bad row keeps every good row out, and a "skip" case
that the good rows still go in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from .helpers import (
    IMPORTED_PASSWORD,
    TS,
    member,
    option,
    query,
    row,
    user,
    useremail,
    userip,
    useroption,
    userrole,
)

#: The tables a single imported user fills (the user, Sentry's side-effect rows).
ONE_USER = {"auth_user": 1, "sentry_useremail": 1, "sentry_email": 1, "sentry_lostpasswordhash": 1}

#: Written by the builder of ``python_literal_malformed`` if anything ever evaluated it.
PWNED_SENTINEL = Path("/tmp/relocate-hostile-pwned")

MB = 1 << 20

#: ``Entry.pk`` when the pk is not checked.
ANY = "any"


@dataclass(frozen=True)
class Entry:
    """A finding or report row the import must produce.

    Attributes:
        model: the model it must name (a trailing ``*``: any name with that prefix).
        ordinal: the per-model ordinal (or, for an element without a model, its position).
        text: substrings its reason must contain (case-insensitive).
        kind: finding kinds accepted (findings only).
        action: ``skipped`` or ``dropped`` (report rows only).
        pk: the source pk it must name (``ANY``: not checked).
    """

    model: str
    ordinal: int
    text: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    action: str = ""
    pk: Any = ANY


@dataclass(frozen=True)
class Case:
    """One hostile export and its expected outcome (see the module docstring)."""

    name: str
    scope: str
    outcome: str
    build: Callable[[Path], Path]
    message: tuple[str, ...] = ()
    findings: tuple[Entry, ...] = ()
    report: tuple[Entry, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)
    setup: Callable[[str], None] | None = None
    verify: Callable[[str], None] | None = None
    #: Run the CLI in a subprocess: with a timeout, measuring its peak memory.
    isolated: bool = False
    timeout: float = 300.0
    max_rss_mb: int | None = None
    #: Report rows expected in all (when the case lists only some of them).
    report_total: int | None = None
    #: Also acceptable: exit 1 with exactly these findings (and nothing written).
    or_findings: tuple[Entry, ...] = ()
    xfail: str | None = None


# ----------------------------------------------------------------------------------------
# Writers


def _write_rows(name: str, rows: list[Any]) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        path = directory / f"{name}.json"
        path.write_text(json.dumps(rows))
        return path

    return build


def _write_bytes(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        path = directory / f"{name}.json"
        path.write_bytes(data() if callable(data) else data)
        return path

    return build


def anchor(pk: int = 1, username: str = "anchor") -> dict:
    """A valid user that rides along with the hostile rows."""
    return user(pk, username)


def _dumps(rows: list[Any]) -> bytes:
    return json.dumps(rows).encode()


def _raw_user_fields(pk: int, username: str) -> str:
    """The JSON text of a valid user's ``fields`` object, without its closing brace."""
    return json.dumps(user(pk, username)["fields"])[:-1]


def _option_fields_text(key: str, value_text: str) -> str:
    """The JSON text of an option's ``fields`` with ``value_text`` as the raw value."""
    head = json.dumps({"key": key, "last_updated": TS, "last_updated_by": "x"})[:-1]
    return f'{head}, "value": {value_text}}}'


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# ----------------------------------------------------------------------------------------
# Builders of the exports that need more than a list of rows


def _truncated() -> bytes:
    text = _dumps([anchor(), user(2, "second")])
    return text[: len(text) - 40]


def _invalid_utf8() -> bytes:
    head = _dumps([anchor()])[:-1]
    bad = b',{"model": "sentry.user", "pk": 2, "fields": {"username": "bad\xff\xfe\xc3"}}]'
    return head + bad


def _nan() -> bytes:
    fields = _option_fields_text("nan", "NaN")
    return f'[{{"model": "sentry.option", "pk": 1, "fields": {fields}}}]'.encode()


def _infinity() -> bytes:
    text = _raw_user_fields(1, "inf") + ', "avatar_type": -Infinity}'
    return f'[{{"model": "sentry.user", "pk": 1, "fields": {text}}}]'.encode()


def _trailing_garbage() -> bytes:
    return _dumps([anchor()]) + b"; DROP TABLE auth_user;--"


def _lone_surrogate() -> bytes:
    # A lone surrogate escape: not a character, cannot be stored as UTF-8.
    text = _raw_user_fields(1, "x") + ', "username": "sur\\ud800rogate"}'
    return f'[{{"model": "sentry.user", "pk": 1, "fields": {text}}}]'.encode()


def _with_raw(element: dict, raw: str) -> str:
    """The element's JSON text with the string ``"@RAW@"`` (a value or a key) replaced by
    the raw JSON text ``raw``."""
    text = json.dumps(element)
    assert text.count('"@RAW@"') == 1
    return text.replace('"@RAW@"', raw)


def _raw_export(*elements: dict | str) -> Callable[[], bytes]:
    """An export of the given elements (dicts, or raw JSON text)."""

    def build() -> bytes:
        parts = [e if isinstance(e, str) else json.dumps(e) for e in elements]
        return ("[\n" + ",\n".join(parts) + "\n]").encode()

    return build


def _invalid_surrogate_escapes() -> bytes:
    return _raw_export(
        anchor(),
        _with_raw(user(2, "@RAW@"), r'"low\udc00"'),
        _with_raw(user(3, "x", email="@RAW@"), r'"a\ud800\u0041@example.com"'),
        _with_raw(user(4, "x", name="@RAW@"), r'"\udc00\ud800"'),
        _with_raw(user(5, "x", **{"@RAW@": 1}), r'"user\udbffname"'),
        _with_raw(user(6, "x", no_such_field={"a": ["@RAW@"]}), r'"\ud83d\ud83d\ude00"'),
        _with_raw({"model": "@RAW@", "pk": 7, "fields": {}}, r'"sentry.user\ud800"'),
        user(8, "after"),
    )()


def _valid_escapes() -> bytes:
    # json.dumps writes non-ASCII as escapes: the emoji as a surrogate pair.
    return _raw_export(
        user(1, "emoji\U0001f600"),
        _with_raw(user(2, "@RAW@"), r'"back\\ud800slash"'),
    )()


def _deep_as_an_element() -> bytes:
    return _raw_export(anchor(), _nested(100_000), user(2, "after"))()


def _deep_in_pk() -> bytes:
    element = {"model": "sentry.user", "pk": "@RAW@", "fields": user(2, "x")["fields"]}
    return _raw_export(anchor(), _with_raw(element, _nested(100_000)), user(3, "after"))()


def _deep_fields() -> bytes:
    element = {"fields": "@RAW@", "model": "sentry.user", "pk": 2}
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    return _raw_export(anchor(), _with_raw(element, deep), user(3, "after"))()


def _deep_nested_value() -> bytes:
    element = user(2, "x", options={"a": [1, {"b": "@RAW@"}]})
    deep = '[{"a": "]", "b":' * 50_000 + "1" + "}]" * 50_000
    return _raw_export(anchor(), _with_raw(element, deep), user(3, "after"))()


def _deep_unclosed() -> bytes:
    return _raw_export(anchor())()[:-1] + b"," + b"[" * 100_000


def _big_numbers_in_values() -> bytes:
    return _raw_export(
        anchor(),
        user(2, "neg", avatar_type=-(2**63) - 1),
        useremail(1, -(2**64), "neg@example.com"),
        _with_raw(user(3, "digits", flags="@RAW@"), "9" * 5000),
        _with_raw(user(4, "double", avatar_type="@RAW@"), "-1e400"),
        _with_raw(user(5, "nested", no_such_field={"a": "@RAW@"}), "1e999"),
    )()


def _user_with_id_fields() -> dict:
    """A user whose fields try to choose the new row's id."""
    hostile = user(5, "idfield")
    hostile["fields"].update(id=424242, pk=424242)
    return hostile


def _deep_value() -> bytes:
    fields = _option_fields_text("deep", _nested(10_000))
    return f'[{{"model": "sentry.option", "pk": 1, "fields": {fields}}}]'.encode()


def _deep_unknown_field() -> bytes:
    text = _raw_user_fields(1, "deep") + f', "no_such_field": {_nested(10_000)}}}'
    return f'[{{"model": "sentry.user", "pk": 1, "fields": {text}}}]'.encode()


def _huge_option_row() -> bytes:
    # One ~10 MB JSON object as a config option's value (a text column: stored as JSON).
    value = {f"key-{i:05d}": "v" * 1000 for i in range(10 * 1024)}
    return _dumps([option(1, "huge.option", value), option(2, "small.option", "ok")])


def _fifty_thousand_unknown() -> bytes:
    junk = "j" * 200
    parts = [_dumps([anchor()])[:-1]]
    parts += [
        b',{"model": "sentry.nosuchmodel", "pk": %d, "fields": {"junk": "%s"}}'
        % (pk, junk.encode())
        for pk in range(1, 50_001)
    ]
    parts.append(b"]")
    return b"".join(parts)


def _duplicate_keys_model() -> bytes:
    # Duplicate keys: the last wins (as in most JSON parsers), here an unknown model.
    text = json.dumps(user(2, "dupkey")["fields"])
    return (
        b"["
        + json.dumps(anchor()).encode()
        + b',{"model": "sentry.user", "pk": 2, "fields": '
        + text.encode()
        + b', "model": "sentry.nosuchmodel"}]'
    )


# ----------------------------------------------------------------------------------------
# Database setup and verification hooks


def _drop_useroption_table(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE sentry_useroption CASCADE")


def _usernames(dsn: str) -> list[str]:
    return [r[0] for r in query(dsn, "SELECT username FROM auth_user ORDER BY username")]


def _verify_first_duplicate_wins(dsn: str) -> None:
    assert _usernames(dsn) == ["first"]


def _verify_sql_field_names(dsn: str) -> None:
    assert query(dsn, "SELECT username, is_superuser, is_staff FROM auth_user") == [
        ("sqlfield", False, False)
    ]


def _verify_literal_values(dsn: str) -> None:
    assert _usernames(dsn) == ["'; DROP TABLE auth_user;--"]
    assert query(dsn, "SELECT email FROM auth_user") == [
        ("x@y.example'); DELETE FROM auth_user;--",)
    ]


def _verify_id_not_injected(dsn: str) -> None:
    (user_id,) = query(dsn, "SELECT id FROM auth_user")[0]
    assert user_id != 424242


def _verify_valid_escapes(dsn: str) -> None:
    assert _usernames(dsn) == ["back\\ud800slash", "emoji\U0001f600"]


def _verify_big_json_values(dsn: str) -> None:
    (value,) = query(dsn, "SELECT value FROM sentry_option WHERE key = 'big.numbers'")[0]
    assert json.loads(value) == _BIG_JSON


#: Integers outside 64 bits inside a JSON value: a text column stores them as they are.
_BIG_JSON = {"big": 2**100, "neg": [-(2**80), 2**63], "float": 1.7e308, "tiny": 5e-324}


def _verify_extreme_pks(dsn: str) -> None:
    assert _usernames(dsn) == ["max", "min", "upper"]
    assert query(
        dsn, "SELECT old_pk FROM relocate_pk_map WHERE model = 'sentry.user' ORDER BY old_pk"
    ) == [(-(2**63) + 1,), (-5,), (2**63 - 1,)]


def _verify_huge_option(dsn: str) -> None:
    (length,) = query(dsn, "SELECT length(value) FROM sentry_option WHERE key = 'huge.option'")[0]
    assert length > 10_000_000
    assert (
        json.loads(query(dsn, "SELECT value FROM sentry_option WHERE key = 'huge.option'")[0][0])[
            "key-00000"
        ]
        == "v" * 1000
    )


def _verify_member_loop(dsn: str) -> None:
    users = dict(query(dsn, "SELECT username, id FROM auth_user"))
    members = query(dsn, "SELECT user_id, inviter_id FROM sentry_organizationmember ORDER BY id")
    assert members == [
        (users["loop-a"], users["loop-b"]),
        (users["loop-b"], users["loop-a"]),
        (users["loop-c"], users["loop-c"]),
    ]


def _verify_org_slug(dsn: str) -> None:
    (slug,) = query(dsn, "SELECT slug FROM sentry_organization")[0]
    assert "/" not in slug and "." not in slug and slug


# ----------------------------------------------------------------------------------------
# Rows of the organization cases


def _org(pk: int, slug: str) -> dict:
    return row(
        "sentry.organization",
        pk,
        name=slug[:64],
        slug=slug,
        status=0,
        date_added=TS,
        default_role="member",
        flags="1",
        is_test=False,
    )


# ----------------------------------------------------------------------------------------
# The corpus

DESERIALIZATION = ("DeserializationFailed",)
VALIDATION = ("ValidationError",)

CORPUS: tuple[Case, ...] = (
    # -- Not a JSON array of rows: fatal, nothing read, nothing written ----------------
    Case(
        "truncated_json",
        "users",
        "error",
        _write_bytes("truncated", _truncated),
        message=("not valid JSON", "after element 1", "premature EOF"),
    ),
    Case(
        "not_array_object",
        "users",
        "error",
        _write_bytes("object", lambda: json.dumps(anchor()).encode()),
        message=("must be a JSON array", "starts with b'{"),
    ),
    Case(
        "not_array_number",
        "users",
        "error",
        _write_bytes("number", b"42"),
        message=("must be a JSON array", "b'42'"),
    ),
    Case(
        "not_array_string",
        "users",
        "error",
        _write_bytes("string", b'"sentry.user"'),
        message=("must be a JSON array", "b'\"sentry.user\"'"),
    ),
    Case(
        "not_array_null",
        "config",
        "error",
        _write_bytes("null", b"null"),
        message=("must be a JSON array", "b'null'"),
    ),
    Case("empty_file", "users", "error", _write_bytes("empty", b""), message=("empty",)),
    Case(
        "whitespace_only",
        "global",
        "error",
        _write_bytes("blank", b" \n\t\r\n "),
        message=("empty",),
    ),
    Case(
        "invalid_utf8",
        "users",
        "error",
        _write_bytes("utf8", _invalid_utf8),
        message=("not valid UTF-8", "after element 1"),
    ),
    Case(
        "nan_literal",
        "config",
        "error",
        _write_bytes("nan", _nan),
        message=("not valid JSON", "after element 0", "NaN is not a JSON value"),
    ),
    Case(
        "infinity_literal",
        "users",
        "error",
        _write_bytes("infinity", _infinity),
        message=("not valid JSON", "after element 0"),
    ),
    Case(
        "trailing_garbage",
        "users",
        "error",
        _write_bytes("garbage", _trailing_garbage),
        message=("not valid JSON", "after element 1", "trailing garbage"),
    ),
    Case(
        "utf8_bom",
        "users",
        "error",
        _write_bytes("bom", lambda: b"\xef\xbb\xbf" + _dumps([anchor()])),
        message=("must be a JSON array", "starts with"),
    ),
    Case(
        "python_repr_not_json",
        "users",
        "error",
        _write_bytes("repr", lambda: repr([anchor()]).encode()),
        message=("not valid JSON", "after element 0"),
    ),
    # -- Elements that are not rows: DeserializationFailed, nothing written -------------
    Case(
        "pk_wrong_types",
        "users",
        "error",
        _write_rows(
            "pk_types",
            [
                anchor(),
                {**user(0, "s"), "pk": "2"},
                {**user(0, "f"), "pk": 2.5},
                {**user(0, "n"), "pk": None},
                {**user(0, "b"), "pk": True},
                {key: value for key, value in user(0, "m").items() if key != "pk"},
            ],
        ),
        findings=tuple(
            Entry(
                "sentry.user", ordinal, ("`pk` must be an integer", shown), DESERIALIZATION, pk=None
            )
            for ordinal, shown in ((2, "'2'"), (3, "2.5"), (4, "None"), (5, "True"), (6, "None"))
        ),
    ),
    Case(
        "integers_beyond_int64",
        "users",
        "error",
        _write_rows(
            "beyond_int64",
            [
                anchor(),
                {**user(0, "h"), "pk": 2**63},
                {**user(0, "h2"), "pk": -(2**70)},
                useremail(1, 2**64, "big@example.com"),
            ],
        ),
        findings=(
            Entry("sentry.user", 2, ("out of the 64-bit range", str(2**63)), DESERIALIZATION),
            Entry("sentry.user", 3, ("out of the 64-bit range",), DESERIALIZATION),
            Entry("sentry.useremail", 1, ("user", "out of range for bigint"), VALIDATION, pk=1),
        ),
    ),
    Case(
        # The reader keeps them exactly; the column decides (here: integer columns).
        "integers_beyond_int64_in_values",
        "users",
        "error",
        _write_bytes("big_values", _big_numbers_in_values),
        findings=(
            Entry("sentry.user", 2, ("avatar_type", "out of range for smallint"), VALIDATION),
            Entry("sentry.useremail", 1, ("user", "out of range for bigint"), VALIDATION, pk=1),
            Entry("sentry.user", 3, ("field `flags`", "4300 digits"), DESERIALIZATION, pk=3),
            Entry("sentry.user", 4, ("field `avatar_type`", "double"), DESERIALIZATION, pk=4),
            Entry("sentry.user", 5, ("`no_such_field`", "double"), DESERIALIZATION, pk=5),
        ),
    ),
    Case(
        "integers_beyond_int64_in_json_text",
        "config",
        "ok",
        _write_rows(
            "big_json",
            [option(1, "big.numbers", _BIG_JSON), user(1, "anchor", no_such_field=2**100)],
        ),
        counts={**ONE_USER, "sentry_option": 1},
        verify=_verify_big_json_values,
    ),
    Case(
        "fields_wrong_types",
        "users",
        "error",
        _write_rows(
            "fields_types",
            [
                anchor(),
                row("sentry.user", 2, x=1) | {"fields": ["username", "evil"]},
                row("sentry.user", 3) | {"fields": "username=evil; is_superuser=true"},
                row("sentry.user", 4) | {"fields": None},
                {"model": "sentry.user", "pk": 5},
            ],
        ),
        findings=(
            Entry("sentry.user", 2, ("`fields` must be an object", "['username'"), DESERIALIZATION),
            Entry(
                "sentry.user", 3, ("`fields` must be an object", "username=evil"), DESERIALIZATION
            ),
            Entry("sentry.user", 4, ("`fields` must be an object", "None"), DESERIALIZATION),
            Entry("sentry.user", 5, ("`fields` must be an object",), DESERIALIZATION),
        ),
    ),
    Case(
        "elements_not_objects",
        "users",
        "error",
        _write_rows("not_objects", [anchor(), 42, "sentry.user", None, [user(2, "in-a-list")]]),
        findings=(
            Entry("<unknown>", 2, ("element 2", "must be an object, not int"), DESERIALIZATION),
            Entry("<unknown>", 3, ("element 3", "not str"), DESERIALIZATION),
            Entry("<unknown>", 4, ("element 4", "not NoneType"), DESERIALIZATION),
            Entry("<unknown>", 5, ("element 5", "not list"), DESERIALIZATION),
        ),
    ),
    Case(
        "model_missing_or_not_a_string",
        "users",
        "error",
        _write_rows(
            "model_types",
            [
                anchor(),
                {"pk": 2, "fields": {}},
                {"model": ["sentry.user"], "pk": 3, "fields": {}},
                {"model": 7, "pk": 4, "fields": {}},
            ],
        ),
        findings=(
            Entry("<unknown>", 2, ("element 2", "`model` must be a string"), DESERIALIZATION),
            Entry("<unknown>", 3, ("element 3", "['sentry.user']"), DESERIALIZATION),
            Entry("<unknown>", 4, ("element 4", "got 7"), DESERIALIZATION),
        ),
    ),
    Case(
        "model_names_like_paths_without_a_dot",
        "users",
        "error",
        _write_rows(
            "path_models",
            [
                anchor(),
                row("/tmp/x", 2, username="p"),
                row("C:\\Windows\\System32", 3, username="w"),
                row("sentry." + "a" * 100, 4, username="long"),
            ],
        ),
        findings=(
            Entry("<unknown>", 2, ("element 2", "app.model", "/tmp/x"), DESERIALIZATION),
            Entry("<unknown>", 3, ("element 3", "app.model", "Windows"), DESERIALIZATION),
            Entry("<unknown>", 4, ("element 4", "app.model"), DESERIALIZATION),
        ),
    ),
    Case(
        "extra_keys_in_row",
        "users",
        "error",
        _write_rows("extra_keys", [anchor(), {**user(2, "extra"), "__proto__": {"admin": 1}}]),
        findings=(
            Entry("sentry.user", 2, ("unexpected keys", "__proto__"), DESERIALIZATION, pk=2),
        ),
    ),
    # -- Values the target columns cannot hold: ValidationError, nothing written ---------
    Case(
        "huge_username_5mb",
        "users",
        "error",
        _write_rows("huge_username", [anchor(), user(2, "u" * (5 * MB))]),
        findings=(
            Entry("sentry.user", 2, ("username", "exceeds the limit of 128"), VALIDATION, pk=2),
        ),
        isolated=True,
        timeout=240,
        max_rss_mb=1024,
    ),
    Case(
        "timestamps_that_are_not_timestamps",
        "users",
        "error",
        _write_rows(
            "timestamps",
            [
                anchor(),
                user(2, "t1", date_joined="yesterday"),
                user(3, "t2", last_login="2023-13-45T99:99:99Z"),
                user(4, "t3", last_active=1687474795),
                user(5, "t4", date_joined="'; DROP TABLE auth_user;--"),
            ],
        ),
        findings=(
            Entry("sentry.user", 2, ("date_joined", "ISO-8601", "yesterday"), VALIDATION, pk=2),
            Entry("sentry.user", 3, ("last_login", "ISO-8601"), VALIDATION),
            Entry("sentry.user", 4, ("last_active", "1687474795"), VALIDATION),
            Entry("sentry.user", 5, ("date_joined", "ISO-8601"), VALIDATION, pk=5),
        ),
    ),
    Case(
        # Python's datetime.fromisoformat (3.11) accepts these; PostgreSQL does not. The
        # option is in its own batch of stage 1: it must not be written either.
        "timestamps_python_accepts_but_postgres_rejects",
        "config",
        "error",
        _write_rows(
            "pg_timestamps",
            [
                option(1, "mail.from", "x"),
                anchor(),
                user(2, "week", date_joined="2023-W25-4T10:00"),
                user(3, "offset", last_login="2023-06-22T22:59:55.488+23:59"),
                user(4, "comma", last_active="2023-06-22T10:00:00,5"),
                user(5, "year0", date_joined="0001-01-01T00:00:00+14:00"),
            ],
        ),
        findings=(
            Entry("sentry.user", 2, ("date_joined",), VALIDATION, pk=2),
            Entry("sentry.user", 3, ("last_login",), VALIDATION, pk=3),
            Entry("sentry.user", 4, ("last_active",), VALIDATION, pk=4),
            Entry("sentry.user", 5, ("date_joined",), VALIDATION, pk=5),
        ),
    ),
    Case(
        # Sentry validates user IPs (spec 6.3); a prefix makes coerce skip the check.
        "ip_addresses_postgres_rejects",
        "global",
        "error",
        _write_rows(
            "pg_inet",
            [anchor(), userip(1, 1, "1.2.3.4/33"), userip(2, 1, "::1/129")],
        ),
        findings=(
            Entry("sentry.userip", 1, ("ip_address",), VALIDATION, pk=1),
            Entry("sentry.userip", 2, ("ip_address",), VALIDATION, pk=2),
        ),
    ),
    Case(
        "ints_out_of_range",
        "organizations",
        "error",
        _write_rows(
            "ints",
            [
                anchor(),
                user(2, "avatar", avatar_type=2**15),
                user(3, "flags", flags=str(2**64)),
                _org(10, "acme") | {"fields": _org(10, "acme")["fields"] | {"status": 2**31}},
            ],
        ),
        findings=(
            Entry("sentry.user", 2, ("avatar_type", "out of range for smallint"), VALIDATION),
            Entry("sentry.user", 3, ("flags",), VALIDATION),
            Entry(
                "sentry.organization", 1, ("status", "out of range for integer"), VALIDATION, pk=10
            ),
        ),
    ),
    Case(
        "wrong_scalar_types",
        "users",
        "error",
        _write_rows(
            "scalars",
            [
                anchor(),
                user(2, "b1", is_active="maybe"),
                user(3, "b2", is_staff=2),
                user(4, "f1", avatar_type=1.5),
                user(5, "o1", name={"first": "x"}, avatar_type=[1]),
            ],
        ),
        findings=(
            Entry("sentry.user", 2, ("is_active", "expected a boolean"), VALIDATION),
            Entry("sentry.user", 3, ("is_staff", "expected a boolean"), VALIDATION),
            Entry("sentry.user", 4, ("avatar_type", "expected an integer"), VALIDATION),
            Entry("sentry.user", 5, ("avatar_type", "expected an integer"), VALIDATION),
        ),
    ),
    Case(
        "nul_characters_in_text",
        "config",
        "error",
        _write_rows(
            "nul_text",
            [
                anchor(),
                user(2, "nul\x00name"),
                option(1, "mail.from", "a\x00b"),
                userrole(1, "Role\x00", ["users.admin"]),
            ],
        ),
        findings=(
            Entry("sentry.user", 2, ("username", "NUL"), VALIDATION),
            Entry("sentry.option", 1, ("value", "NUL"), VALIDATION, pk=1),
            Entry("sentry.userrole", 1, ("name", "NUL"), VALIDATION),
        ),
    ),
    Case(
        "python_literal_arrays_malformed",
        "config",
        "error",
        _write_rows(
            "literals",
            [
                anchor(),
                userrole(1, "Unclosed", "['users.admin', 'broadcasts.admin'"),
                userrole(2, "Code", f"__import__('os').system('touch {PWNED_SENTINEL}')"),
                userrole(3, "NotAList", "{'users.admin': 1}"),
                userrole(4, "Nested", "[['a', ['b']], 'c'"),
            ],
        ),
        findings=(
            Entry("sentry.userrole", 1, ("permissions", "expected a list"), VALIDATION),
            Entry("sentry.userrole", 2, ("permissions", "expected a list"), VALIDATION, pk=2),
            Entry("sentry.userrole", 3, ("permissions", "expected a list"), VALIDATION),
            Entry("sentry.userrole", 4, ("permissions", "expected a list"), VALIDATION),
        ),
    ),
    Case(
        "foreign_key_values_out_of_range",
        "users",
        "error",
        _write_rows(
            "fk_range",
            [anchor(), useremail(1, 1e30, "a@example.com"), useremail(2, "one", "b@example.com")],
        ),
        findings=(
            Entry("sentry.useremail", 1, ("user", "out of range for bigint"), VALIDATION),
            Entry("sentry.useremail", 2, ("user", "expected an integer"), VALIDATION, pk=2),
        ),
    ),
    Case(
        "deep_nesting_10000_in_a_value",
        "config",
        "error",
        _write_bytes("deep", _deep_value),
        findings=(Entry("sentry.option", 1, ("nested",), (*DESERIALIZATION, *VALIDATION)),),
        isolated=True,
        timeout=180,
    ),
    Case(
        # The field is not a column: ignoring it is fine, and so is a clean finding.
        "deep_nesting_10000_in_an_unknown_field",
        "users",
        "ok",
        _write_bytes("deep_unknown", _deep_unknown_field),
        counts=ONE_USER,
        or_findings=(Entry("sentry.user", 1, ("nested",), (*DESERIALIZATION, *VALIDATION)),),
        isolated=True,
        timeout=180,
    ),
    Case(
        "deep_nesting_100000_as_an_element",
        "users",
        "error",
        _write_bytes("deep_element", _deep_as_an_element),
        findings=(Entry("<unknown>", 2, ("not a list", "nested more than 100"), DESERIALIZATION),),
        isolated=True,
        timeout=180,
        max_rss_mb=1024,
    ),
    Case(
        "deep_nesting_100000_in_pk",
        "users",
        "error",
        _write_bytes("deep_pk", _deep_in_pk),
        findings=(Entry("sentry.user", 2, ("`pk`", "nested"), DESERIALIZATION, pk=None),),
        isolated=True,
        timeout=180,
        max_rss_mb=1024,
    ),
    Case(
        "deep_nesting_100000_in_fields_before_the_model",
        "users",
        "error",
        _write_bytes("deep_fields", _deep_fields),
        findings=(Entry("sentry.user", 2, ("field `a`", "nested"), DESERIALIZATION, pk=2),),
        isolated=True,
        timeout=180,
        max_rss_mb=1024,
    ),
    Case(
        "deep_nesting_100000_in_a_nested_value",
        "users",
        "error",
        _write_bytes("deep_nested", _deep_nested_value),
        findings=(Entry("sentry.user", 2, ("field `options`", "nested"), DESERIALIZATION, pk=2),),
        isolated=True,
        timeout=180,
        max_rss_mb=1024,
    ),
    Case(
        # An array column's value as a string holding JSON: parsed by the conversion.
        "deep_nesting_100000_in_an_array_string",
        "config",
        "error",
        _write_rows(
            "deep_array_string",
            [anchor(), userrole(1, "Deep", _nested(100_000)), userrole(2, "Ok", "['a']")],
        ),
        findings=(Entry("sentry.userrole", 1, ("permissions", "nested"), VALIDATION, pk=1),),
        isolated=True,
        timeout=180,
        max_rss_mb=1024,
    ),
    Case(
        "deep_nesting_100000_unclosed",
        "users",
        "error",
        _write_bytes("deep_unclosed", _deep_unclosed),
        message=("not valid JSON", "after element 1", "premature EOF"),
        isolated=True,
        timeout=180,
        max_rss_mb=1024,
    ),
    # -- Rows that are skipped (reported), the valid ones imported ----------------------
    Case(
        "unknown_and_excluded_models",
        "users",
        "skip",
        _write_rows(
            "unknown",
            [
                anchor(),
                row("sentry.doesnotexist", 1, username="x"),
                row("sites.site", 1, domain="example.com", name="example.com"),
                row("auth.user", 1, username="root", is_superuser=True),
                row("sentry.actor", 1, type=0, user_id=1),
            ],
        ),
        report=(
            Entry("sentry.doesnotexist", 1, ("unknown model",), action="skipped"),
            Entry("sites.site", 1, ("excluded app `sites`",), action="skipped"),
            Entry("auth.user", 1, ("excluded app `auth`",), action="skipped"),
            Entry("sentry.actor", 1, ("removed",), action="skipped"),
        ),
        counts=ONE_USER,
    ),
    Case(
        "model_names_like_sql",
        "users",
        "skip",
        _write_rows(
            "sql_models",
            [
                row("sentry.user; drop table auth_user;--", 1, username="sql1"),
                row('sentry."user"', 2, username="sql2"),
                row("sentry.user'--", 3, username="sql3"),
                row("sentry.user\\", 4, username="sql4"),
                row('sentry.user"); DELETE FROM relocate_pk_map;--', 5, username="sql5"),
                anchor(),
            ],
        ),
        report=(
            Entry("sentry.user; drop table auth_user;--", 1, ("unknown model",), action="skipped"),
            Entry('sentry."user"', 1, ("unknown model",), action="skipped"),
            Entry("sentry.user'--", 1, ("unknown model",), action="skipped"),
            Entry("sentry.user\\", 1, ("unknown model",), action="skipped"),
            Entry(
                'sentry.user"); delete from relocate_pk_map;--',
                1,
                ("unknown model",),
                action="skipped",
            ),
        ),
        counts=ONE_USER,
    ),
    Case(
        "model_name_with_nul",
        "users",
        "skip",
        _write_rows("nul_model", [anchor(), row("sentry.user\x00; drop table auth_user", 2)]),
        report=(Entry("sentry.user*", 1, ("unknown model",), action="skipped"),),
        counts=ONE_USER,
    ),
    Case(
        "model_names_like_paths",
        "users",
        "skip",
        _write_rows(
            "dotted_paths",
            [
                anchor(),
                row("../../etc/passwd", 1, username="p1"),
                row("./sentry.user", 2, username="p2"),
                row("sentry.user/../../../tmp/x", 3, username="p3"),
            ],
        ),
        report=(
            Entry("../../etc/passwd", 1, ("unknown model",), action="skipped"),
            Entry("./sentry.user", 1, ("unknown model",), action="skipped"),
            Entry("sentry.user/../../../tmp/x", 1, ("unknown model",), action="skipped"),
        ),
        counts=ONE_USER,
    ),
    Case(
        "fifty_thousand_rows_of_an_unknown_model",
        "users",
        "skip",
        _write_bytes("fifty_k", _fifty_thousand_unknown),
        report=(
            Entry("sentry.nosuchmodel", 1, ("unknown model",), action="skipped"),
            Entry("sentry.nosuchmodel", 50_000, ("unknown model",), action="skipped"),
        ),
        report_total=50_000,
        counts=ONE_USER,
        isolated=True,
        timeout=300,
        max_rss_mb=1024,
    ),
    Case(
        "duplicate_pks_within_a_model",
        "users",
        "skip",
        _write_rows("dup_pks", [user(1, "first"), user(1, "second")]),
        report=(Entry("sentry.user", 2, ("duplicate pk 1",), action="skipped", pk="1"),),
        counts=ONE_USER,
        verify=_verify_first_duplicate_wins,
    ),
    Case(
        "duplicate_keys_in_a_row",
        "users",
        "skip",
        _write_bytes("dup_keys", _duplicate_keys_model),
        report=(Entry("sentry.nosuchmodel", 1, ("unknown model",), action="skipped"),),
        counts=ONE_USER,
    ),
    Case(
        "table_missing_reason_names_the_table",
        "users",
        "skip",
        _write_rows("missing_table", [anchor(), useroption(1, 1, "language", '"en"')]),
        setup=_drop_useroption_table,
        report=(Entry("sentry.useroption", 1, ("sentry_useroption",), action="skipped"),),
        counts=ONE_USER,
    ),
    Case(
        "table_missing_in_the_target",
        "users",
        "skip",
        _write_rows(
            "missing_table",
            [anchor(), useroption(1, 1, "language", '"en"'), useroption(2, 1, "x", "1")],
        ),
        setup=_drop_useroption_table,
        report=(
            Entry("sentry.useroption", 1, ("no table",), action="skipped"),
            Entry("sentry.useroption", 2, ("no table",), action="skipped"),
        ),
        counts=ONE_USER,
    ),
    # -- Rows that are dropped (reported), the valid ones imported ----------------------
    Case(
        "foreign_keys_to_nowhere",
        "users",
        "drop",
        _write_rows(
            "dangling",
            [
                anchor(),
                useremail(1, 99, "ghost@example.com"),
                useroption(1, 98, "language", '"en"'),
                useroption(2, 1, "language", '"de"'),
            ],
        ),
        report=(
            Entry(
                "sentry.useremail",
                1,
                ("`user`", "sentry.user pk 99", "not imported"),
                action="dropped",
            ),
            Entry(
                "sentry.useroption",
                1,
                ("`user`", "sentry.user pk 98", "not imported"),
                action="dropped",
            ),
        ),
        counts={**ONE_USER, "sentry_useroption": 1},
    ),
    Case(
        # No relocatable model references itself, and the model graph has no cycle
        # (test_hostile checks both against the registry), so the loops an export can
        # hold go through users: two members inviting each other's users, a member who
        # invited itself, and a user email pointing at its own (absent) pk.
        "reference_loops_through_nullable_fields",
        "organizations",
        "drop",
        _write_rows(
            "loops",
            [
                user(1, "loop-a"),
                user(2, "loop-b"),
                user(3, "loop-c"),
                _org(10, "loops"),
                member(1, 10, 1, inviter_id=2),
                member(2, 10, 2, inviter_id=1),
                member(3, 10, 3, inviter_id=3),
                member(4, 10, 4, inviter_id=4),
                useremail(4, 4, "self@example.com"),
            ],
        ),
        report=(
            Entry(
                "sentry.organizationmember",
                4,
                ("`user_id`", "pk 4", "not imported"),
                action="dropped",
            ),
            Entry("sentry.useremail", 1, ("`user`", "pk 4", "not imported"), action="dropped"),
        ),
        counts={
            "auth_user": 3,
            "sentry_useremail": 3,
            "sentry_email": 3,
            "sentry_lostpasswordhash": 3,
            "sentry_organization": 1,
            "sentry_organizationmember": 3,
            "sentry_organizationmapping": 1,
            "sentry_organizationslugreservation": 1,
            "hybridcloud_organizationslugreservationreplica": 1,
            "sentry_organizationmembermapping": 3,
        },
        verify=_verify_member_loop,
    ),
    # -- Hostile but harmless: ignored or stored literally ------------------------------
    Case(
        "field_names_like_sql",
        "users",
        "ok",
        _write_rows(
            "sql_fields",
            [
                user(
                    1,
                    "sqlfield",
                    **{
                        'username"; DROP TABLE auth_user;--': "evil",
                        'is_superuser" = true, "is_staff': True,
                        "password') ; UPDATE auth_user SET is_superuser = true;--": "x",
                    },
                )
            ],
        ),
        counts=ONE_USER,
        verify=_verify_sql_field_names,
    ),
    Case(
        "field_names_like_paths",
        "users",
        "ok",
        _write_rows(
            "path_fields",
            [user(1, "pathfield", **{"../../etc/passwd": "root", "/tmp/x": 1, "fields/../id": 7})],
        ),
        counts=ONE_USER,
    ),
    Case(
        "values_like_sql",
        "users",
        "ok",
        _write_rows(
            "sql_values",
            [user(1, "'; DROP TABLE auth_user;--", "x@y.example'); DELETE FROM auth_user;--")],
        ),
        counts=ONE_USER,
        verify=_verify_literal_values,
    ),
    Case(
        "id_in_fields",
        "users",
        "ok",
        _write_rows("id_field", [_user_with_id_fields()]),
        counts=ONE_USER,
        verify=_verify_id_not_injected,
    ),
    Case(
        # Decoded as "?" once; an invalid escape is a finding, never a changed value.
        "lone_surrogate_escape",
        "users",
        "error",
        _write_bytes("surrogate", _lone_surrogate),
        findings=(Entry("sentry.user", 1, ("field `username`", "\\ud800"), DESERIALIZATION, pk=1),),
    ),
    Case(
        "invalid_surrogate_escapes_anywhere",
        "users",
        "error",
        _write_bytes("surrogates", _invalid_surrogate_escapes),
        findings=(
            Entry("sentry.user", 2, ("field `username`", "\\udc00"), DESERIALIZATION, pk=2),
            Entry("sentry.user", 3, ("field `email`", "\\ud800"), DESERIALIZATION, pk=3),
            Entry("sentry.user", 4, ("field `name`", "\\udc00"), DESERIALIZATION, pk=4),
            Entry("sentry.user", 5, ("field name", "\\udbff"), DESERIALIZATION, pk=5),
            Entry("sentry.user", 6, ("`no_such_field`", "\\ud83d"), DESERIALIZATION, pk=6),
            Entry("<unknown>", 7, ("`model`", "\\ud800"), DESERIALIZATION, pk=7),
        ),
    ),
    Case(
        "valid_surrogate_pairs_and_escaped_backslashes",
        "users",
        "ok",
        _write_bytes("valid_escapes", _valid_escapes),
        counts={table: 2 for table in ONE_USER},
        verify=_verify_valid_escapes,
    ),
    Case(
        "upper_case_model_and_extreme_pks",
        "users",
        "ok",
        _write_rows(
            "extreme_pks",
            [
                {**user(2**63 - 1, "max"), "model": "SENTRY.USER"},
                {**user(-(2**63) + 1, "min"), "model": "Sentry.User"},
                user(-5, "upper"),
            ],
        ),
        counts={table: 3 for table in ONE_USER},
        verify=_verify_extreme_pks,
    ),
    Case(
        "org_slug_like_a_path",
        "organizations",
        "ok",
        _write_rows("slug_path", [_org(10, "../../etc/passwd")]),
        counts={
            "sentry_organization": 1,
            "sentry_organizationmapping": 1,
            "sentry_organizationslugreservation": 1,
            "hybridcloud_organizationslugreservationreplica": 1,
        },
        verify=_verify_org_slug,
    ),
    Case(
        "single_10mb_row",
        "config",
        "ok",
        _write_bytes("huge_row", _huge_option_row),
        counts={"sentry_option": 2},
        verify=_verify_huge_option,
        isolated=True,
        timeout=300,
        max_rss_mb=1024,
    ),
)

#: The passwords the corpus exports (none may survive an import outside Global).
EXPORTED_PASSWORDS = frozenset({IMPORTED_PASSWORD})
