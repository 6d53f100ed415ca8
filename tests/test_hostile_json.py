"""Issue 16, points 2, 3 and 14: JSON text a parser would silently change or choke on.

* 2: a ``\\uXXXX`` escape of half a UTF-16 surrogate pair without its other half is not a
  character. It is a finding on its row, never a changed value (``?``, or an unrelated
  character made of a high surrogate and whatever escape follows it).
* 3: nesting is refused in bounded memory before it is built, in the export's own JSON
  and in a string holding JSON (an array column's value): a finding on the row, never an
  exhausted memory or a ``RecursionError``.
* 14: an integer outside 64 bits is read exactly; the row that holds it gets the finding
  its column calls for (a pk: DeserializationFailed; an integer column: ValidationError),
  and the other rows are still read and validated.

The reader is tested directly (over every variant, and with the text cut at every
boundary), then the CLI on a real database for one export per point. The deep-nesting
reads run in a subprocess whose address space is capped, so that a reader that builds the
nesting fails the test with a MemoryError instead of exhausting the machine.
"""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from relocate.io import export_reader
from relocate.io.export_reader import MAX_NESTING, BadRow, ExportFormatError, Row, iter_export
from relocate.logic.values import ValueProblem, coerce, value_converter

from .helpers import import_export, option, query, row, user, useremail, useroption, userrole

REPO = Path(__file__).resolve().parent.parent
RAW = "@RAW@"
DEEP = 100_000


def with_raw(element: dict, raw: str) -> str:
    """The element's JSON text with the string ``"@RAW@"`` (a value or a key) replaced by
    the raw JSON text ``raw``."""
    text = json.dumps(element)
    assert text.count(f'"{RAW}"') == 1
    return text.replace(f'"{RAW}"', raw)


def export(*elements: dict | str) -> bytes:
    """An export of the given elements (dicts, or raw JSON text)."""
    parts = [e if isinstance(e, str) else json.dumps(e) for e in elements]
    return ("[\n" + ",\n".join(parts) + "\n]").encode()


def read(data: bytes) -> list[Row | BadRow]:
    return list(iter_export(io.BytesIO(data)))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def import_findings(dsn: str, scope: str, src: Path, tmp_path: Path) -> tuple[int, list, str]:
    findings = tmp_path / "findings.json"
    run = import_export(dsn, scope, src, "--findings-file", str(findings))
    text = findings.read_text()
    return run.code, json.loads(text) if text else [], run.err


def written(dsn: str) -> int:
    """Rows the import recorded as written (0: nothing at all)."""
    return query(dsn, "SELECT count(*) FROM relocate_pk_map")[0][0]


# ----------------------------------------------------------------------------------------
# 2. Surrogate escapes without their pair

#: A string value's raw JSON text holding an invalid escape, and the escape the finding
#: must show.
INVALID_ESCAPES = {
    "lone_high": (r'"eve\ud800"', r"\ud800"),
    "lone_high_upper_case": (r'"eve\uD800"', r"\ud800"),
    "lone_high_at_the_start": (r'"\udbffeve"', r"\udbff"),
    "lone_low": (r'"eve\udc00x"', r"\udc00"),
    "lone_low_last": (r'"eve\udfff"', r"\udfff"),
    "high_then_a_non_surrogate_escape": (r'"eve\ud800\u0041"', r"\ud800"),
    "high_then_a_plain_character": (r'"eve\ud800A"', r"\ud800"),
    "high_then_an_escaped_newline": (r'"eve\ud800\n"', r"\ud800"),
    "high_then_high_then_low": (r'"\ud800\ud83d\ude00"', r"\ud800"),
    "reversed_pair": (r'"\udc00\ud800"', r"\udc00"),
    "two_lows": (r'"\udc00\udc00"', r"\udc00"),
    "valid_pair_then_lone_low": (r'"\ud83d\ude00\ude00"', r"\ude00"),
}


@pytest.mark.parametrize("raw,escape", INVALID_ESCAPES.values(), ids=list(INVALID_ESCAPES))
def test_16_02_invalid_surrogate_escape_is_a_finding_on_its_row(raw: str, escape: str) -> None:
    items = read(export(user(1, "before"), with_raw(user(2, RAW), raw), user(3, "after")))
    assert [type(i) for i in items] == [Row, BadRow, Row]
    bad = items[1]
    assert (bad.position, bad.model, bad.ordinal, bad.pk) == (2, "sentry.user", 2, 2)
    assert "field `username`" in bad.reason and escape in bad.reason
    assert "surrogate" in bad.reason
    assert items[2].ordinal == 3 and items[2].fields["username"] == "after"


#: Where in a row the invalid escape is: (the element with "@RAW@" in that place, the
#: model and ordinal the finding must name, text its reason must hold).
SURROGATE_PLACES = {
    "field_name": (user(2, "x", **{RAW: 1}), "sentry.user", 2, "field name"),
    "nested_value": (
        user(2, "x", options={"a": ["ok", RAW]}),
        "sentry.user",
        2,
        "inside field `options`",
    ),
    "unknown_field": (user(2, "x", no_such_field=RAW), "sentry.user", 2, "`no_such_field`"),
    "unknown_model": (row("sentry.nosuchmodel", 1, name=RAW), "sentry.nosuchmodel", 1, "`name`"),
    "model_name": ({"model": RAW, "pk": 2, "fields": {}}, "<unknown>", 2, "`model`"),
    "pk": ({"model": "sentry.user", "pk": RAW, "fields": {}}, "sentry.user", 2, "`pk`"),
    "row_key": ({**user(2, "x"), RAW: 1}, "sentry.user", 2, "the key"),
}


@pytest.mark.parametrize(
    "element,model,ordinal,where", SURROGATE_PLACES.values(), ids=list(SURROGATE_PLACES)
)
@pytest.mark.parametrize("raw", [r'"sentry.user\ud800"', r'"\udc00"'], ids=["high", "low"])
def test_16_02_invalid_surrogate_escape_anywhere_in_a_row_is_a_finding(
    element: dict, model: str, ordinal: int, where: str, raw: str
) -> None:
    items = read(export(user(1, "before"), with_raw(element, raw), user(3, "after")))
    assert [type(i) for i in items] == [Row, BadRow, Row]
    bad = items[1]
    assert (bad.position, bad.model, bad.ordinal) == (2, model, ordinal)
    assert where in bad.reason and "surrogate" in bad.reason
    # The reason is storable text: no lone surrogate leaks into the report.
    bad.reason.encode("utf-8")
    bad.model.encode("utf-8")


#: Escapes that are valid, and the text they stand for.
VALID_ESCAPES = {
    "pair": (r'"a\ud83d\ude00b"', "a\U0001f600b"),
    "pair_upper_case": (r'"\uD83D\uDE00"', "\U0001f600"),
    "highest_pair": (r'"\udbff\udfff"', "\U0010ffff"),
    "lowest_pair": (r'"\ud800\udc00"', "\U00010000"),
    "pairs_back_to_back": (r'"\ud83d\ude00\ud83d\ude01"', "\U0001f600\U0001f601"),
    "escaped_backslash": (r'"\\ud800"', "\\ud800"),
    "escaped_backslash_then_pair": (r'"\\\ud83d\ude00"', "\\\U0001f600"),
    "below_the_range": (r'"\ud7ff\ue000"', "\ud7ff\ue000"),
    "utf8_astral": ('"\U0001f600"', "\U0001f600"),
}


@pytest.mark.parametrize("raw,text", VALID_ESCAPES.values(), ids=list(VALID_ESCAPES))
def test_16_02_valid_escapes_are_read_exactly(raw: str, text: str) -> None:
    items = read(export(with_raw(user(1, RAW), raw), with_raw(user(2, "x", **{RAW: 1}), raw)))
    assert [type(i) for i in items] == [Row, Row]
    assert items[0].fields["username"] == text
    assert text in items[1].fields


#: Pieces of a JSON string's raw text: surrogate escapes, and what may sit beside them.
ESCAPE_PIECES = (
    r"\ud800",
    r"\udbff",
    r"\udc00",
    r"\uDFFF",
    r"\ud83d",
    r"\ude00",
    r"\\",
    r"\u0041",
    r"\n",
    r"\"",
    "ud800",
    "u",
    "a",
)


def test_16_02_every_combination_of_escapes_is_judged_exactly() -> None:
    """Each string of up to three pieces: a finding exactly when decoding it leaves a
    lone surrogate, and otherwise the decoded text."""
    combinations = [
        "".join(c) for n in (1, 2, 3) for c in itertools.product(ESCAPE_PIECES, repeat=n)
    ]
    rows = [with_raw(user(pk, RAW), f'"{raw}"') for pk, raw in enumerate(combinations, 1)]
    items = read(export(*rows))
    assert len(items) == len(combinations)
    for raw, item in zip(combinations, items, strict=True):
        decoded = json.loads(f'"{raw}"')
        lone = any(0xD800 <= ord(c) <= 0xDFFF for c in decoded)
        if lone:
            assert isinstance(item, BadRow) and "surrogate" in item.reason, raw
        else:
            assert isinstance(item, Row) and item.fields["username"] == decoded, raw


def test_16_02_lone_surrogate_username_is_a_finding(db_dsn: str, tmp_path: Path) -> None:
    """The issue's case: ``"eve\\ud800"`` was stored as ``eve?``."""
    src = tmp_path / "eve.json"
    src.write_bytes(
        export(user(1, "anchor"), with_raw(user(2, RAW), r'"eve\ud800"'), user(3, "other"))
    )
    code, findings, err = import_findings(db_dsn, "users", src, tmp_path)
    assert code == 1, err[-2000:]
    assert [(f["kind"], f["on"], f["left_pk"]) for f in findings] == [
        ("DeserializationFailed", {"model": "sentry.user", "ordinal": 2}, 2)
    ]
    assert "\\ud800" in findings[0]["reason"] and "Traceback" not in err
    assert written(db_dsn) == 0
    assert query(db_dsn, "SELECT count(*) FROM auth_user") == [(0,)]


# ----------------------------------------------------------------------------------------
# 3. Deep nesting

#: Address space the capped reader may use (a reader that builds 100,000 levels of
#: nesting needs tens of GB).
CAP_MB = 1024

#: Caps the address space of the process at ``CAP_MB``.
_CAP = f"""
import resource
limit = {CAP_MB} << 20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
"""

_READ_CAPPED = (
    _CAP
    + """
import json, sys
from relocate.io.export_reader import BadRow, ExportFormatError, iter_export
items = []
try:
    with open(sys.argv[1], "rb") as f:
        for item in iter_export(f):
            if isinstance(item, BadRow):
                items.append(["bad", item.position, item.model, item.ordinal, item.reason])
            else:
                items.append(["row", item.model, item.ordinal, item.pk])
    error = None
except ExportFormatError as exc:
    error = str(exc)
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"items": items, "error": error, "peak_mb": peak / 1024}))
"""
)


def read_capped(path: Path) -> dict[str, Any]:
    """Reads the export in a subprocess with its address space capped at ``CAP_MB``."""
    proc = subprocess.run(
        [sys.executable, "-c", _READ_CAPPED, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


#: The deep part's place: (the element with "@RAW@" there, or "@" for the element itself;
#: the model and ordinal the finding names; text its reason holds).
DEPTH_PLACES = {
    "element": ("@", "<unknown>", 2, ""),
    "pk": ({"model": "sentry.user", "pk": RAW, "fields": {}}, "sentry.user", 2, "`pk`"),
    "model": ({"model": RAW, "pk": 2, "fields": {}}, "<unknown>", 2, "`model`"),
    "fields": ({"model": "sentry.user", "pk": 2, "fields": RAW}, "sentry.user", 2, "field"),
    "fields_first": (
        {"fields": RAW, "pk": 2, "model": "sentry.option"},
        "sentry.option",
        1,
        "field",  # `fields`, or the field in it
    ),
    "field_value": (user(2, "x", options=RAW), "sentry.user", 2, "field `options`"),
    "nested_value": (
        user(2, "x", options={"a": [1, {"b": RAW}]}),
        "sentry.user",
        2,
        "field `options`",
    ),
    "unknown_field": (user(2, "x", no_such_field=RAW), "sentry.user", 2, "`no_such_field`"),
    "unknown_model": (row("sentry.nosuchmodel", 1, x=RAW), "sentry.nosuchmodel", 1, "`x`"),
}

#: The deep values: raw JSON text.
DEPTHS = {
    "lists_100000": nested(DEEP),
    "objects_100000": '{"a":' * DEEP + "1" + "}" * DEEP,
    "mixed_100000": '[{"a":' * (DEEP // 2) + '"s"' + "}]" * (DEEP // 2),
    "strings_inside_100000": '["]", ' * DEEP + '"x"' + "]" * DEEP,
    "lists_900": nested(900),
    f"lists_{MAX_NESTING + 1}": nested(MAX_NESTING + 1),
}


@pytest.mark.parametrize("deep", DEPTHS.values(), ids=list(DEPTHS))
@pytest.mark.parametrize(
    "element,model,ordinal,where", DEPTH_PLACES.values(), ids=list(DEPTH_PLACES)
)
def test_16_03_deep_nesting_is_refused_in_bounded_memory(
    element: dict | str, model: str, ordinal: int, where: str, deep: str, tmp_path: Path
) -> None:
    element_text = deep if element == "@" else with_raw(element, deep)  # type: ignore[arg-type]
    src = tmp_path / "deep.json"
    src.write_bytes(export(user(1, "before"), element_text, user(3, "after")))
    result = read_capped(src)
    assert result["error"] is None
    before, bad, after = result["items"]
    assert before == ["row", "sentry.user", 1, 1]
    assert bad[:4] == ["bad", 2, model, ordinal]
    assert where in bad[4] and f"nested more than {MAX_NESTING} levels deep" in bad[4]
    assert after[0] == "row" and after[3] == 3
    assert result["peak_mb"] < 400


@pytest.mark.parametrize("place", ["element", "field_value"])
def test_16_03_memory_does_not_grow_with_the_depth(place: str, tmp_path: Path) -> None:
    """Two million levels (4 MB) cost what a hundred thousand do."""
    element, *_ = DEPTH_PLACES[place]
    peaks = []
    for depth in (DEEP, 2_000_000):
        text = nested(depth) if element == "@" else with_raw(element, nested(depth))  # type: ignore[arg-type]
        src = tmp_path / f"deep{depth}.json"
        src.write_bytes(export(user(1, "before"), text, user(3, "after")))
        result = read_capped(src)
        assert result["error"] is None and len(result["items"]) == 3
        peaks.append(result["peak_mb"])
    assert peaks[1] - peaks[0] < 50, peaks


def test_16_03_nesting_up_to_the_limit_is_read() -> None:
    deep = json.loads(nested(MAX_NESTING))
    items = read(export(user(1, "x", options=deep), option(1, "k", {"a": deep[0]})))
    assert [type(i) for i in items] == [Row, Row]
    assert items[0].fields["options"] == deep


@pytest.mark.parametrize("tail", ["", "]]]", '[{"a": "'], ids=["open", "half_closed", "string"])
def test_16_03_an_export_that_ends_inside_deep_nesting_is_cut_short(
    tail: str, tmp_path: Path
) -> None:
    src = tmp_path / "open.json"
    src.write_bytes(export(user(1, "x"))[:-1] + b"," + ("[" * DEEP + tail).encode())
    result = read_capped(src)
    assert result["items"] == [["row", "sentry.user", 1, 1]]
    assert "after element 1" in result["error"] and "premature EOF" in result["error"]


#: Strings holding deep JSON (or Python-literal) lists, as an array column's value.
DEEP_ARRAY_STRINGS = {
    "json_lists_100000": nested(DEEP),
    "json_lists_1000": nested(1000),
    "json_lists_7": nested(7),
    "json_objects_100000": "[" + '{"a":' * DEEP + "1" + "}" * DEEP + "]",
    "json_objects_200": "[" + '{"a":' * 200 + "1" + "}" * 200 + "]",
    "python_lists_100000": "[" * DEEP + "'a'" + "]" * DEEP,
    "python_lists_150": "[" * 150 + "'a'" + "]" * 150,
    "python_tuples_100000": "[" + "(" * DEEP + "'a'," + ")" * DEEP + "]",
}


@pytest.mark.parametrize("text", DEEP_ARRAY_STRINGS.values(), ids=list(DEEP_ARRAY_STRINGS))
@pytest.mark.parametrize("kind", ["array:text", "array:int:bigint", "array:float"])
def test_16_03_deep_array_string_is_a_value_problem(text: str, kind: str) -> None:
    with pytest.raises(ValueProblem, match="nested|expected a list"):
        coerce(text, kind)


def test_16_03_array_of_six_dimensions_is_kept() -> None:
    assert coerce(json.dumps([[[[[["a"]]]]]]), "array:text") == [[[[[["a"]]]]]]


def test_16_03_deep_json_in_string_values_is_a_finding(db_dsn: str, tmp_path: Path) -> None:
    """An array column's string value, and a timezone option, holding deep JSON."""
    src = tmp_path / "deep_strings.json"
    rows = [
        user(1, "anchor"),
        userrole(1, "Deep", nested(DEEP)),
        userrole(2, "Fine", "['users.admin']"),
        useroption(1, 1, "timezone", nested(DEEP)),
    ]
    src.write_text(json.dumps(rows))
    code, findings, err = import_findings(db_dsn, "config", src, tmp_path)
    assert code == 1, err[-2000:]
    assert "Traceback" not in err and "RecursionError" not in err
    found = sorted((f["kind"], f["on"]["model"], f["on"]["ordinal"]) for f in findings)
    assert found == [
        ("ValidationError", "sentry.useroption", 1),
        ("ValidationError", "sentry.userrole", 1),
    ]
    assert written(db_dsn) == 0


def test_16_03_deep_nesting_import_is_a_finding(db_dsn: str, tmp_path: Path) -> None:
    """The issue's file (100,000 nested lists) beside a valid user, through the CLI."""
    src = tmp_path / "deep.json"
    src.write_bytes(export(user(1, "anchor"), nested(DEEP)))
    code, findings, err = import_findings(db_dsn, "users", src, tmp_path)
    assert code == 1, err[-2000:]
    assert [(f["kind"], f["on"]) for f in findings] == [
        ("DeserializationFailed", {"model": "<unknown>", "ordinal": 2})
    ]
    assert "nested" in findings[0]["reason"]
    assert written(db_dsn) == 0


# ----------------------------------------------------------------------------------------
# 14. Integers outside 64 bits (and other numbers Python cannot hold)

BIG_PKS = {
    "two_to_the_63": 2**63,
    "below_minus_two_to_the_63": -(2**63) - 1,
    "minus_two_to_the_70": -(2**70),
    "ten_to_the_30": 10**30,
}


@pytest.mark.parametrize("pk", BIG_PKS.values(), ids=list(BIG_PKS))
def test_16_14_pk_outside_int64_is_a_finding_on_its_row(pk: int) -> None:
    items = read(export(user(1, "before"), user(pk, "big"), user(3, "after")))
    assert [type(i) for i in items] == [Row, BadRow, Row]
    assert (items[1].position, items[1].model, items[1].ordinal) == (2, "sentry.user", 2)
    assert "out of the 64-bit range" in items[1].reason and str(pk) in items[1].reason
    assert items[2].ordinal == 3


@pytest.mark.parametrize("pk", [-(2**63), 2**63 - 1, 0])
def test_16_14_pk_at_the_ends_of_int64_is_read(pk: int) -> None:
    (item,) = read(export(user(pk, "edge")))
    assert isinstance(item, Row) and item.pk == pk


BIG_VALUES = {
    "two_to_the_64": 2**64,
    "minus_two_to_the_64": -(2**64),
    "nested_in_a_json_value": {"a": [1, {"b": 2**100}], "c": -(2**80)},
    "nested_in_a_list": [2**63, -(2**63) - 1],
    "huge_floats": [1.7e308, -1.7e308, 5e-324],
    "many_digits": 10**4000,
}


@pytest.mark.parametrize("value", BIG_VALUES.values(), ids=list(BIG_VALUES))
def test_16_14_big_numbers_in_fields_are_read_exactly(value: Any) -> None:
    """The reader keeps them; each column decides (``relocate.logic.values``)."""
    (item,) = read(export(user(1, "x", some_field=value)))
    assert isinstance(item, Row) and item.fields["some_field"] == value


@pytest.mark.parametrize(
    "raw,text",
    [
        ("1" * 4301, "more than 4300 digits"),
        ("-" + "9" * 5000, "more than 4300 digits"),
        ("1e400", "beyond the range of a double"),
        ("-1.5e309", "beyond the range of a double"),
        ('[1, {"a": 1e999}]', "beyond the range of a double"),
    ],
    ids=["4301_digits", "5000_digits_negative", "1e400", "minus_1.5e309", "nested_1e999"],
)
@pytest.mark.parametrize("place", ["field", "pk"])
def test_16_14_numbers_python_cannot_hold_are_a_finding_on_their_row(
    raw: str, text: str, place: str
) -> None:
    if place == "pk":
        element = {"model": "sentry.user", "pk": RAW, "fields": {"username": "x"}}
    else:
        element = user(2, "x", avatar_type=RAW)
    items = read(export(user(1, "before"), with_raw(element, raw), user(3, "after")))
    assert [type(i) for i in items] == [Row, BadRow, Row]
    assert (items[1].position, items[1].model, items[1].ordinal) == (2, "sentry.user", 2)
    assert text in items[1].reason
    assert ("field `avatar_type`" if place == "field" else "`pk`") in items[1].reason


@pytest.mark.parametrize(
    "value,kind",
    [
        (2**63, "int:bigint"),
        (-(2**63) - 1, "int:bigint"),
        ("9" * 19, "int:bigint"),
        (2**31, "int:integer"),
        (10**400, "float"),
        ([1, 2**64], "array:int:bigint"),
        ("[1, 18446744073709551616]", "array:int:bigint"),
    ],
)
def test_16_14_integer_a_column_cannot_hold_is_a_value_problem(value: Any, kind: str) -> None:
    with pytest.raises(ValueProblem, match="out of range|beyond"):
        coerce(value, kind)


_CONVERTER_KINDS = ("int:bigint", "int:integer", "int:smallint", "text", "varchar:5", "bool")
_CONVERTER_VALUES = (
    0,
    -1,
    2**15,
    2**31 - 1,
    2**31,
    -(2**31),
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    True,
    False,
    1.0,
    1.5,
    "1",
    " 7 ",
    "abc",
    "abcde",
    "abcdef",
    "a\x00b",
    "",
    "true",
    "t",
    [1],
    {"a": 1},
)


@pytest.mark.parametrize("kind", _CONVERTER_KINDS)
def test_a_kinds_value_converter_decides_every_value_as_coerce_does(kind: str) -> None:
    """The per-column fast path takes no value ``coerce`` would refuse or change."""
    convert = value_converter(kind)
    for value in _CONVERTER_VALUES:
        try:
            expected: Any = ("value", coerce(value, kind))
        except ValueProblem as exc:
            expected = ("problem", str(exc))
        try:
            got: Any = ("value", convert(value))
        except ValueProblem as exc:
            got = ("problem", str(exc))
        assert got == expected and type(got[1]) is type(expected[1]), (kind, value)


def test_16_14_integer_outside_int64_is_a_finding_on_its_row(db_dsn: str, tmp_path: Path) -> None:
    """Each row holding one gets its finding; the rest are validated; nothing written."""
    src = tmp_path / "big_ints.json"
    rows = [
        user(1, "anchor", no_such_field=2**100),  # not a column: ignored
        user(2**63, "pk-too-big"),
        user(3, "avatar", avatar_type=-(2**63) - 1),
        useremail(1, 2**64, "big@example.com"),
        user(4, "bad-date", date_joined="yesterday"),  # still validated
    ]
    src.write_text(json.dumps(rows))
    code, findings, err = import_findings(db_dsn, "users", src, tmp_path)
    assert code == 1, err[-2000:]
    found = sorted((f["on"]["model"], f["on"]["ordinal"], f["kind"]) for f in findings)
    assert found == [
        ("sentry.user", 2, "DeserializationFailed"),
        ("sentry.user", 3, "ValidationError"),
        ("sentry.user", 4, "ValidationError"),
        ("sentry.useremail", 1, "ValidationError"),
    ]
    reasons = {(f["on"]["model"], f["on"]["ordinal"]): f["reason"] for f in findings}
    assert str(2**63) in reasons[("sentry.user", 2)]
    assert "avatar_type" in reasons[("sentry.user", 3)]
    assert "out of range for bigint" in reasons[("sentry.useremail", 1)]
    assert written(db_dsn) == 0


def test_16_14_integers_outside_int64_in_json_text_are_stored_exactly(
    db_dsn: str, tmp_path: Path
) -> None:
    """A text column holding JSON takes them as Sentry does: digit for digit."""
    src = tmp_path / "big_json.json"
    value = {"big": 2**100, "neg": [-(2**80)], "float": 1.7e308}
    src.write_text(json.dumps([option(1, "big.ints", value), user(1, "anchor", x=2**64)]))
    code, findings, err = import_findings(db_dsn, "config", src, tmp_path)
    assert code == 0, err[-2000:]
    assert findings == []
    (stored,) = query(db_dsn, "SELECT value FROM sentry_option WHERE key = 'big.ints'")[0]
    assert json.loads(stored) == value


# ----------------------------------------------------------------------------------------
# The streaming itself: the same items whatever the chunks the text arrives in


def _boundary_export() -> bytes:
    rows = [
        with_raw(user(1, RAW), r'"a\ud83d\ude00b\u00e9"'),
        with_raw(user(2, RAW), r'"eve\ud800"'),
        user(3, "caf\u00e9 \U0001f600", flags=str(2**64), avatar_type=-(2**63)),
        with_raw(user(4, "x", n=RAW), "-12345678901234567890.5e-3"),
        with_raw(user(5, "x", n=RAW), "1e400"),
        with_raw(user(6, "x", n=RAW), nested(150)),
        with_raw(user(7, "x", n=RAW), nested(3000)),
        with_raw(user(8, "x", n=RAW), '"' + "\\\\" * 20 + '\\"\\u0041"'),
        user(9, "literals", a=True, b=False, c=None, d=[], e={}),
        '  \n  {"model" : "sentry.user" , "pk" : 10 , "fields" : { "username" : "ws" } }  ',
    ]
    return export(*rows)


@pytest.mark.parametrize("read_size", [1, 2, 3, 5, 7, 11, 64, 1000])
def test_items_do_not_depend_on_where_the_text_is_cut(
    read_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _boundary_export()
    expected = read(data)
    assert [type(i).__name__ for i in expected] == ["Row", "BadRow", "Row", "Row"] + [
        "BadRow"
    ] * 3 + ["Row", "Row", "Row"]
    monkeypatch.setattr(export_reader, "READ_SIZE", read_size)
    assert read(data) == expected


MALFORMED = {
    "open": (b"[", 0, "premature EOF"),
    "in_a_string": (b'[{"model": "sentry.user", "pk": 1, "fields": {"a": "x', 0, "premature EOF"),
    "no_closing": (b'[{"model": "sentry.user", "pk": 1, "fields": {}}', 1, "premature EOF"),
    "after_a_comma": (b'[{"model": "sentry.user", "pk": 1, "fields": {}},', 1, "premature EOF"),
    "trailing_comma": (
        b'[{"model": "sentry.user", "pk": 1, "fields": {}},]',
        1,
        "expected a value",
    ),
    "no_comma": (b'[{"model": "sentry.user", "pk": 1, "fields": {}} 1]', 1, "expected ',' or ']'"),
    "trailing_garbage": (b'[{"model": "a.b", "pk": 1, "fields": {}}] x', 1, "trailing garbage"),
    "nan": (b'[{"model": "a.b", "pk": 1, "fields": {"a": NaN}}]', 0, "NaN"),
    "minus_infinity": (b'[{"model": "a.b", "pk": 1, "fields": {"a": -Infinity}}]', 0, "Infinity"),
    "control_character": (b'[{"model": "a.b", "pk": 1, "fields": {"a": "\x01"}}]', 0, "control"),
    "invalid_utf8": (b'[{"model": "a.b", "pk": 1, "fields": {"a": "\xff"}}]', 0, "UTF-8"),
    "utf8_encoded_surrogate": (
        b'[{"model": "a.b", "pk": 1, "fields": {"a": "\xed\xa0\x80"}}]',
        0,
        "UTF-8",
    ),
    "cut_utf8_sequence": (b'[{"model": "a.b", "pk": 1, "fields": {"a": "\xc3', 0, "UTF-8"),
    "bad_utf8_after_a_row": (b'[{"model": "a.b", "pk": 1, "fields": {}}, "\xc3\x28"]', 1, "UTF-8"),
}


@pytest.mark.parametrize("read_size", [1, 3, 1 << 20])
@pytest.mark.parametrize("data,after,message", MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_text_is_one_clear_error(
    data: bytes, after: int, message: str, read_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_reader, "READ_SIZE", read_size)
    with pytest.raises(ExportFormatError) as info:
        read(data)
    assert f"after element {after}:" in str(info.value)
    assert message.lower() in str(info.value).lower()


def test_the_cap_on_the_address_space_holds() -> None:
    """What ``read_capped`` relies on: past the cap, memory is refused."""
    proc = subprocess.run(
        [sys.executable, "-c", _CAP + "bytearray(2 * limit)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "MemoryError" in proc.stderr


_TIMESTAMPS = (
    "2024-06-01T10:00:00Z",
    "2024-06-01 10:00:00.123456+15:59",
    "2024-06-01T10:00:00-1530",
    "2024-06-01T10:00:00+16:00",
    "2024-06-01T10:00:00-16",
    "2024-06-01T10:00:00+99:00",
    "2024-06-01T10:00:00+05:60",
    "2024-02-30T10:00:00Z",
    "2024-W22-6",
    "2024-06-01T10:00:00,5Z",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-01:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59+01:00",
    "2024-06-01",
)


def test_a_timestamp_is_read_as_sentry_reads_it_and_written_as_postgresql_takes_it(
    db_dsn: str,
) -> None:
    """Python's (and so Sentry's) reading, sent as text PostgreSQL takes as the same
    instant; offsets of 16 hours or more, which PostgreSQL cannot store, are refused."""
    convert = value_converter("timestamp")
    passed = {}
    with psycopg.connect(db_dsn) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        for text in _TIMESTAMPS:
            try:
                value = convert(text)
            except ValueProblem:
                continue
            passed[text] = value
            stored = conn.execute("SELECT %s::timestamptz", (value,)).fetchone()[0]
            read = datetime.fromisoformat(text.replace(" ", "T", 1))
            # A time without an offset is the session's time zone's (UTC here).
            assert stored == (read if read.tzinfo else read.replace(tzinfo=timezone.utc)), text
    assert passed == {
        "2024-06-01T10:00:00Z": "2024-06-01T10:00:00Z",
        "2024-06-01 10:00:00.123456+15:59": "2024-06-01 10:00:00.123456+15:59",
        "2024-06-01T10:00:00-1530": "2024-06-01T10:00:00-1530",
        "2024-06-01T10:00:00+05:60": "2024-06-01T10:00:00+06:00",
        "0001-01-01T00:00:00-01:00": "0001-01-01T00:00:00-01:00",
        "9999-12-31T23:59:59+01:00": "9999-12-31T23:59:59+01:00",
        "2024-06-01": "2024-06-01",
    }
