"""Converts exported field values to what a PostgreSQL column of a given type accepts.

Exports carry values as Django's JSON serializer wrote them: bitfields as decimal strings,
Postgres arrays as JSON lists or (older exports) Python-literal strings, JSON columns as
objects, datetimes as ISO-8601 text with or without milliseconds. ``coerce`` maps each
to a Python value psycopg sends correctly, and rejects, with a message naming the
problem, what the column cannot hold, so bad input becomes a finding before any write.
"""

from __future__ import annotations

import ast
import ipaddress
import json
import math
import re
import sys
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

from relocate.io.export_reader import MAX_NESTING

_VARCHAR = re.compile(r"^character varying\((\d+)\)$")
_INT_TEXT = re.compile(r"^-?\d{1,19}$")
_DATE_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?"
#: PostgreSQL takes offsets up to 15:59, as written.
_TIMESTAMP = re.compile(_DATE_TIME + r"(Z|[+-](0\d|1[0-5])(:?[0-5]\d)?)?$")
#: The same shape with any two-digit offset: Python reads minutes past 59 (+05:60 is
#: +06:00), as Sentry's DateTimeField does; PostgreSQL refuses them as written.
_TIMESTAMP_ANY_OFFSET = re.compile(_DATE_TIME + r"(Z|[+-]\d{2}(:?\d{2})?)?$")
#: PostgreSQL takes UTC offsets up to 15:59.
_LARGEST_OFFSET = timedelta(hours=16)

INT_TYPES = {"bigint": 2**63, "integer": 2**31, "smallint": 2**15}
#: PostgreSQL arrays have at most 6 dimensions (MAXDIM).
MAX_ARRAY_DIMENSIONS = 6
_SURROGATE = re.compile("[\ud800-\udfff]")


class ValueProblem(ValueError):
    """A value that the target column cannot hold."""


def column_kind(pg_type: str) -> str:
    """Classifies a ``format_type`` string: int, float, bool, text, timestamp, ...

    Array types are ``array:<element kind>``; varchar(N) is ``varchar:N``.
    """
    if pg_type.endswith("[]"):
        return "array:" + column_kind(pg_type.removesuffix("[]").removesuffix("[]"))
    if pg_type in INT_TYPES:
        return "int:" + pg_type
    if pg_type in ("double precision", "real") or pg_type.startswith("numeric"):
        return "float"
    if pg_type == "boolean":
        return "bool"
    match = _VARCHAR.match(pg_type)
    if match:
        return f"varchar:{match.group(1)}"
    if pg_type in ("text", "character varying", "citext"):
        return "text"
    if pg_type.startswith("timestamp"):
        return "timestamp"
    if pg_type == "date":
        return "date"
    if pg_type in ("json", "jsonb"):
        return "json"
    if pg_type == "uuid":
        return "uuid"
    if pg_type in ("inet", "cidr"):
        return "inet"
    return "other"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_text(text: str) -> str:
    if "\x00" in text:
        raise ValueProblem("text contains a NUL character, which PostgreSQL cannot store")
    return text


def value_converter(kind: str) -> Callable[[Any], Any]:
    """``coerce`` for one column kind, with the commonest case of the kind decided first.

    A row's fields go through this once each (ten million calls at 1M rows): an integer
    column's int, a text column's str and a boolean column's bool take a few checks;
    every other value, and every other kind, goes to ``coerce``, which decides as before.
    """
    if kind.startswith("int:"):
        limit = INT_TYPES[kind[4:]]

        def integer(value: Any) -> Any:
            if type(value) is int and -limit <= value < limit:
                return value
            return coerce(value, kind)

        return integer
    if kind == "text" or kind.startswith("varchar:"):
        longest = int(kind[8:]) if kind != "text" else None

        def text(value: Any) -> Any:
            if (
                type(value) is str
                and (longest is None or len(value) <= longest)
                and "\x00" not in value
            ):
                return value
            return coerce(value, kind)

        return text
    if kind == "bool":

        def boolean(value: Any) -> Any:
            return value if type(value) is bool else coerce(value, kind)

        return boolean
    if kind == "timestamp":
        return _timestamp  # about one a row: straight to it, past coerce's other kinds
    return lambda value: coerce(value, kind)


def coerce(value: Any, kind: str) -> Any:
    """Returns ``value`` as the column kind expects it; None stays None.

    Raises:
        ValueProblem: the value cannot be stored in such a column.
    """
    if value is None:
        return None
    if kind.startswith("int:"):
        limit = INT_TYPES[kind[4:]]
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and _INT_TEXT.match(value.strip()):
            number = int(value.strip())
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        else:
            raise ValueProblem(f"expected an integer, got {_short(value)}")
        if not -limit <= number < limit:
            raise ValueProblem(f"integer {number} is out of range for {kind[4:]}")
        return number
    if kind.startswith("varchar:") or kind == "text":
        if isinstance(value, str):
            text = value
        elif isinstance(value, (dict, list)):
            # Sentry's legacy JSON fields are text columns holding JSON.
            text = json.dumps(value, separators=(",", ":"), sort_keys=True)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            raise ValueProblem(f"expected text, got {_short(value)}")
        if kind.startswith("varchar:") and len(text) > int(kind[8:]):
            raise ValueProblem(f"text of {len(text)} characters exceeds the limit of {kind[8:]}")
        return _check_text(text)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false", "t", "f"):
            return value.lower() in ("true", "t")
        raise ValueProblem(f"expected a boolean, got {_short(value)}")
    if kind == "float":
        if isinstance(value, bool):
            raise ValueProblem(f"expected a number, got {_short(value)}")
        if isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueProblem(f"expected a finite number, got {_short(value)}")
            if isinstance(value, int) and not -sys.float_info.max <= value <= sys.float_info.max:
                # JSON integers have no limit; the float columns are double precision.
                raise ValueProblem(f"the number {_short(value)} is beyond the range of a double")
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueProblem(f"expected a number, got {_short(value)}") from None
        if not math.isfinite(number):
            raise ValueProblem(f"expected a finite number, got {_short(value)}")
        return number
    if kind == "timestamp":
        return _timestamp(value)
    if kind == "date":
        if not isinstance(value, str):
            raise ValueProblem(f"expected an ISO-8601 date, got {_short(value)}")
        try:
            date.fromisoformat(value[:10])
        except ValueError:
            raise ValueProblem(f"expected an ISO-8601 date, got {_short(value)}") from None
        return value[:10]
    if kind == "json":
        _check_json(value)
        return value  # wrapped for psycopg at write time (a Jsonb crosses Beam slowly)
    if kind == "uuid":
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            raise ValueProblem(f"expected a UUID, got {_short(value)}") from None
    if kind == "inet":
        try:
            text = str(value)
            interface = ipaddress.ip_interface(text)
            return text if "/" in text else str(interface.ip)
        except ValueError:
            raise ValueProblem(f"expected an IP address, got {_short(value)}") from None
    if kind.startswith("array:"):
        return _coerce_array(value, kind[6:])
    if isinstance(value, str):
        return _check_text(value)
    return value


def _timestamp(value: Any) -> str:
    """A timestamp column's value: ISO-8601 text that PostgreSQL reads as it is.

    Raises:
        ValueProblem: not such text, or out of PostgreSQL's range.
    """
    if not isinstance(value, str):
        raise ValueProblem(f"expected an ISO-8601 datetime, got {_short(value)}")
    # Python accepts more than PostgreSQL (week dates, ',' fractions, any offset):
    # the shape is checked first, so what passes here, the database takes.
    if _TIMESTAMP.match(value):
        parsed = _parsed(value)
        if parsed is not None:
            # An offset can carry the first or the last day past the range.
            if value.startswith(("0001", "9999")) and parsed.utcoffset() is not None:
                _in_range(parsed, value)
            return value
    elif _TIMESTAMP_ANY_OFFSET.match(value):
        # Offset minutes past 59 or hours past 15: the offset Python reads, written out
        # as PostgreSQL takes it, if it is under 16 hours.
        parsed = _parsed(value)
        offset = parsed.utcoffset() if parsed is not None else None
        if offset is not None and abs(offset) < _LARGEST_OFFSET:
            _in_range(parsed, value)
            return parsed.isoformat()
    raise ValueProblem(f"expected an ISO-8601 datetime, got {_short(value)}")


def _parsed(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        return None


def _in_range(parsed: datetime, value: str) -> None:
    try:
        parsed.astimezone(timezone.utc)
    except OverflowError:
        raise ValueProblem(f"datetime out of range: {_short(value)}") from None


def _check_json(value: Any, depth: int = 0) -> None:
    # PostgreSQL's jsonb input rejects NUL characters and nests at most ~6000 deep; say so
    # with the row named instead of failing the whole batch.
    if depth > 1000:
        raise ValueProblem("JSON value is nested more than 1000 levels deep")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueProblem("JSON text contains a NUL character (\\u0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise ValueProblem("JSON key contains a NUL character (\\u0000)")
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueProblem("JSON value holds NaN or Infinity")


def _coerce_array(value: Any, element_kind: str) -> list:
    if isinstance(value, str):
        value = _parse_list_text(value)
    if not isinstance(value, list):
        raise ValueProblem(f"expected a list, got {_short(value)}")
    if _nested_too_deep(value):
        raise ValueProblem(_TOO_DEEP)
    return _coerce_elements(value, element_kind)


_TOO_DEEP = (
    f"a list nested too deep: PostgreSQL arrays have at most {MAX_ARRAY_DIMENSIONS} "
    f"dimensions, and values are nested at most {MAX_NESTING} levels"
)


def _coerce_elements(value: list, element_kind: str) -> list:
    return [
        _coerce_elements(v, element_kind) if isinstance(v, list) else coerce(v, element_kind)
        for v in value
    ]


def _parse_list_text(value: str) -> list:
    """The list an array column's string value holds: JSON, or (older exports) a Python
    literal such as ``"['a', 'b']"``.

    Raises:
        ValueProblem: not a list, nested too deep to parse, or holding a ``\\u`` escape
            of a lone UTF-16 surrogate (not a character).
    """
    text = value.strip()
    try:
        parsed = json.loads(text)
    except RecursionError:  # deeper than Python's stack: memory stays small
        raise ValueProblem(_TOO_DEEP) from None
    except ValueError:
        try:
            parsed = ast.literal_eval(text) if len(text) < 1_000_000 else None
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parsed = None
    if not isinstance(parsed, (list, tuple)):
        raise ValueProblem(f"expected a list, got {_short(value)}")
    if "\\" in text and _holds_surrogate(parsed):
        raise ValueProblem(
            "a \\u escape in the list is half of a UTF-16 surrogate pair without its "
            "other half: not a character"
        )
    return list(parsed)


def _nested_too_deep(value: list) -> bool:
    """Whether lists (and tuples) nest more than ``MAX_ARRAY_DIMENSIONS`` levels, or
    containers of any kind more than ``MAX_NESTING`` (found iteratively: no recursion)."""
    stack: list[tuple[Any, int, int]] = [(value, 1, 1)]  # (container, lists, levels)
    while stack:
        item, lists, levels = stack.pop()
        if lists > MAX_ARRAY_DIMENSIONS or levels > MAX_NESTING:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (list, tuple)):
                stack.append((child, lists + 1, levels + 1))
            elif isinstance(child, dict):
                stack.append((child, lists, levels + 1))
    return False


def _holds_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
    return False
