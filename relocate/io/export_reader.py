"""Streaming reader of Sentry exports: a JSON array of ``{"model", "pk", "fields"}`` rows.

The export is never held whole in memory. It is decoded from UTF-8 a chunk at a time, and
Python's C JSON scanner reads one element of the array at a time from the text read so
far (only the unread part is kept). Each row gets its per-model ordinal (1-based, in file
order), which names it in findings and reports.

Malformed rows do not stop the read: they come out as ``BadRow`` records naming their
position, so that the importer can report them. That includes what a JSON parser would
otherwise change or choke on: a ``\\uXXXX`` escape of a lone UTF-16 surrogate (not a
character), a value nested more than ``MAX_NESTING`` levels deep (refused with bounded
memory: the nesting is never built), and numbers Python cannot hold (an integer of more
than 4300 digits, a float beyond a double). Integers outside 64 bits are read exactly:
the columns decide (a pk must be 64-bit; ``relocate.logic.values`` checks the rest).
Only a file that is not a JSON array, is not valid JSON or UTF-8, or is cut short,
raises ``ExportFormatError``.
"""

from __future__ import annotations

import io
import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple

#: Longest model name accepted from an export (Sentry's chunk tables use varchar(64)).
MAX_MODEL_NAME = 64
#: Deepest nesting of a field value: deeper values would overflow the recursion of the
#: pickling between pipeline steps (Sentry's own JSON fields nest a few levels).
MAX_NESTING = 100
#: Bytes read from the stream at a time.
READ_SIZE = 1 << 20
#: A parse error this close to the end of the text read so far may only mean that the
#: text stops inside a number, literal or escape: read on before calling it an error.
_CUT_MARGIN = 16

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SEPARATOR = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")
#: A ``\u`` escape of a UTF-16 surrogate (D800-DFFF) in the raw text: rows holding one are
#: checked for surrogates the decoder left unpaired (it combines valid pairs itself).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: Matches, from an element's start, as far as its escapes are valid: every surrogate
#: escape a high one immediately followed by a low one (a pair). Escapes are consumed
#: whole, left to right, so an escaped backslash is never read as the start of one.
_VALID_ESCAPES = re.compile(
    r"(?:[^\\]+|\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    r"|u(?![dD][89a-fA-F])|[^u]))*"
)
# For skipping a value without building it: the rest of a string (up to its closing
# quote, or to the end of the text read so far), the next character that matters in a
# container, and a scalar.
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.S)
_CONTAINER_MARK = re.compile(r'["\[\]{}]')
_SCALAR = re.compile(r"[^\s,\]}]*")


class ExportFormatError(ValueError):
    """The export is not a JSON array of rows, or it is cut short."""


class Row(NamedTuple):
    """One row of an export.

    Attributes:
        model: normalised (lower-case) model name, e.g. ``sentry.user``.
        ordinal: 1-based position of the row among the rows of its model, in file order.
        pk: the source primary key (an int for valid rows).
        fields: the row's fields as exported.
    """

    model: str
    ordinal: int
    pk: Any
    fields: dict[str, Any]


@dataclass(frozen=True)
class BadRow:
    """An element of the export that is not a valid row.

    Attributes:
        position: 1-based position of the element in the array.
        model: the model name when it could be read (else ``"<unknown>"``).
        ordinal: the per-model ordinal when the model could be read (else the position).
        pk: the pk as found, when any.
        reason: what is wrong.
    """

    position: int
    model: str
    ordinal: int
    pk: Any
    reason: str


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)) and _deeper_than(value, 20):
        # repr would recurse as deep as the value does
        return f"a {type(value).__name__} nested more than 20 levels deep"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _model_name(element: dict) -> tuple[str | None, str | None]:
    """Returns (normalised model name, problem) of an element that is an object."""
    model = element.get("model")
    if not isinstance(model, str):
        return None, f"`model` must be a string, got {_describe(model)}"
    name = model.lower()
    if len(name) > MAX_MODEL_NAME or "." not in name:
        return None, f"`model` is not a model name of the form app.model: {_describe(model)}"
    return name, None


def check_row(element: Any) -> tuple[str | None, str | None]:
    """Returns (normalised model name, problem); problem is None for a valid row."""
    if isinstance(element, (dict, list)) and _deeper_than(element, MAX_NESTING):
        deep = _too_deep(element)
        if deep is not None:
            return deep
    if not isinstance(element, dict):
        return None, f"an element of the export must be an object, not {type(element).__name__}"
    name, problem = _model_name(element)
    if problem is not None:
        return None, problem
    pk = element.get("pk")
    if isinstance(pk, bool) or not isinstance(pk, int):
        return name, f"`pk` must be an integer, got {_describe(pk)}"
    if not -(2**63) <= pk < 2**63:
        return name, f"`pk` is out of the 64-bit range: {_describe(pk)}"
    fields = element.get("fields")
    if not isinstance(fields, dict):
        return name, f"`fields` must be an object, got {_describe(fields)}"
    extra = set(element) - {"model", "pk", "fields"}
    if extra:
        return name, f"unexpected keys in the row: {sorted(extra)!r}"[:200]
    return name, None


def _too_deep(element: dict | list) -> tuple[str | None, str] | None:
    """(model name, problem) when a part of the element nests more than ``MAX_NESTING``
    levels: the element itself when it is a list, a value of the row, or a field."""
    limit = MAX_NESTING
    nested = f"nested more than {limit} levels deep"
    if isinstance(element, list):
        if _deeper_than(element, limit):
            return None, f"an element of the export must be an object, not a list ({nested})"
        return None
    place = None
    for key, value in element.items():
        if key == "fields" and isinstance(value, dict):
            place = next(
                (f"field {_quote(f)}" for f, v in value.items() if _deeper_than(v, limit)), None
            )
        elif _deeper_than(value, limit):
            place = _quote(key)
        if place is not None:
            name = _model_name(element)[0] if key != "model" else None
            return name, f"{place} is {nested}"
    return None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` levels in ``value`` (itself included),
    found iteratively: no recursion."""
    if not isinstance(value, (dict, list)):
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _quote(name: str) -> str:
    """A field name for a message: in backticks, escaped when it holds odd characters."""
    if name.isprintable() and "`" not in name:
        return f"`{name}`"
    return _describe(name)


def _unpaired_surrogate(element: Any) -> tuple[str, bool] | None:
    """Where ``element`` holds a lone UTF-16 surrogate, if anywhere.

    The decoder combines a valid ``\\uD8xx\\uDCxx`` pair into its character and leaves
    every other surrogate escape as a lone surrogate, which is not a character (nor
    storable as UTF-8): each one it left came from an invalid escape.

    Returns:
        (what is wrong, naming the place; whether it is in the model name), or None.
    """
    stack: list[tuple[tuple[Any, ...], Any]] = [((), element)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found is not None:
                return _surrogate_problem(_place(path), found.group()), path == ("model",)
        elif isinstance(item, dict):
            for key, value in item.items():
                found = _SURROGATE.search(key)
                if found is not None:
                    if path == ():
                        where = f"the key {_describe(key)}"
                    elif path == ("fields",):
                        where = f"the field name {_describe(key)}"
                    else:
                        where = f"the key {_describe(key)} in {_place(path)}"
                    return _surrogate_problem(where, found.group()), False
                stack.append(((*path, key), value))
        elif isinstance(item, list):
            stack.extend(((*path, i), v) for i, v in enumerate(item))
    return None


def _surrogate_problem(where: str, surrogate: str) -> str:
    return (
        f"{where} holds the escape \\u{ord(surrogate):04x}, half of a UTF-16 surrogate pair "
        "without its other half: not a character"
    )


def _place(path: tuple[Any, ...]) -> str:
    """Names the value at ``path`` (keys and indexes from the element) for a message."""
    if not path:
        return "the element"
    if path[0] == "fields" and len(path) > 1 and isinstance(path[1], str):
        place = f"field {_quote(path[1])}"
        return place if len(path) == 2 else f"a value inside {place}"
    place = _quote(path[0]) if isinstance(path[0], str) else f"item {path[0]}"
    return place if len(path) == 1 else f"a value inside {place}"


class _Unreadable(Exception):
    """A value the decoder cannot represent (not a syntax error: the row is named)."""


class _NotJson(Exception):
    """A token that looks like a value but is not JSON (NaN, Infinity)."""


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Unreadable(f"the number {text[:40]} is beyond the range of a double")
    return value


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


class _Text:
    """The export's text: decoded from UTF-8 a chunk at a time; only ``buf[pos:]`` kept.

    ``more`` keeps the text from ``pos`` on and appends the next chunk, so callers hold
    positions relative to ``pos`` (set ``pos`` to what must be kept before calling it).
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.consumed = 0  # characters dropped before buf
        self._carry = b""  # the start of a UTF-8 sequence the last chunk cut
        self._bad_utf8: UnicodeDecodeError | None = None  # met beyond the end of buf
        self._escape_at = -1  # the next surrogate escape at or after it, or len(buf)

    def more(self, at_least: int = 0) -> bool:
        """Reads at least ``at_least`` (and ``READ_SIZE``) more bytes; False at the end.

        Raises:
            UnicodeDecodeError: the next bytes are not valid UTF-8.
        """
        if self._bad_utf8 is not None:
            raise self._bad_utf8
        if self.eof:
            return False
        want = max(READ_SIZE, at_least)
        parts = []
        got = 0
        while got < want:
            chunk = self._stream.read(want - got)
            if not chunk:
                self.eof = True
                break
            parts.append(chunk)
            got += len(chunk)
        data = self._carry + b"".join(parts)
        self._carry = b""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = data[: exc.start].decode("utf-8")
            if exc.end == len(data) and not self.eof and len(data) - exc.start < 4:
                self._carry = data[exc.start :]  # completed by the next chunk
            else:
                self._bad_utf8 = exc
        self.buf = self.buf[self.pos :] + text
        self.consumed += self.pos
        self.pos = 0
        self._escape_at = -1
        return bool(text) or self._bad_utf8 is not None or not self.eof

    def surrogate_escape_between(self, start: int, end: int) -> bool:
        """Whether ``buf[start:end]`` may hold a surrogate escape (one search per chunk)."""
        if self._escape_at < start:
            found = _SURROGATE_ESCAPE.search(self.buf, start)
            self._escape_at = found.start() if found else len(self.buf)
        return self._escape_at < end


class _Reader:
    """Reads the elements of the export's array, one at a time."""

    def __init__(self, stream: BinaryIO) -> None:
        self._text = _Text(stream)
        # One scanner per reader: its key memo is not shared between threads.
        self._scan_once = json.JSONDecoder(
            parse_float=_parse_float, parse_constant=_reject_constant
        ).scan_once
        self._position = 0  # elements read
        self._ordinals: dict[str, int] = {}
        #: Where the element last yielded starts: characters from the start of the text.
        self.start = 0

    def items(self) -> Iterator[Row | BadRow]:
        text = self._text
        if self._peek() != "[":
            raise ExportFormatError("the export must be a JSON array of rows")
        text.pos += 1
        if self._peek() != "]":
            scan = self._scan_once
            separator = _SEPARATOR.match
            while True:
                # The common case inline (a complete, valid row); anything else, and a row
                # the text read so far cuts, takes the careful path.
                start = text.pos
                self.start = text.consumed + start
                try:
                    element, end = scan(text.buf, start)
                except (StopIteration, ValueError, RecursionError, _Unreadable, _NotJson):
                    yield self._element()
                else:
                    text.pos = end
                    yield self._row(element, start, end)
                found = separator(text.buf, text.pos)
                if found is not None and found.end() < len(text.buf):
                    text.pos = found.end()
                    continue
                mark = self._peek()
                if mark == ",":
                    text.pos += 1
                    self._peek()
                    continue
                if mark == "]":
                    break
                if mark is None:
                    raise self._cut_short()
                raise self._not_json(f"expected ',' or ']', found {mark!r}", text.pos)
        text.pos += 1
        if self._peek() is not None:
            raise self._not_json("trailing garbage after the array", text.pos)

    def _peek(self) -> str | None:
        """The next character that is not whitespace (consuming the whitespace)."""
        text = self._text
        while True:
            text.pos = _WHITESPACE.match(text.buf, text.pos).end()
            if text.pos < len(text.buf):
                return text.buf[text.pos]
            if not self._more():
                return None

    def _more(self, at_least: int = 0) -> bool:
        try:
            return self._text.more(at_least)
        except UnicodeDecodeError as exc:
            raise ExportFormatError(
                f"the export is not valid UTF-8 after element {self._position}: {exc.reason} "
                f"(byte {exc.object[exc.start : exc.start + 1]!r})"
            ) from None

    def _element(self) -> Row | BadRow:
        text = self._text
        try:
            element, end = self._scan()
        except RecursionError:
            return self._partly_read_element(f"nested more than {MAX_NESTING} levels deep")
        except _Unreadable as exc:
            return self._partly_read_element(str(exc))
        start, text.pos = text.pos, end  # (reading on may have moved the start)
        return self._row(element, start, end)

    def _row(self, element: Any, start: int, end: int) -> Row | BadRow:
        """The item for an element decoded from ``buf[start:end]``."""
        text = self._text
        suspect = (
            text.surrogate_escape_between(start, end)
            and _VALID_ESCAPES.match(text.buf, start, end).end() != end
        )
        if type(element) is dict and not suspect and len(element) == 3:
            # What check_row would find valid, checked at the cost of a few lookups.
            model = element.get("model")
            pk = element.get("pk")
            fields = element.get("fields")
            if (
                type(model) is str
                and type(pk) is int
                and type(fields) is dict
                and -(2**63) <= pk < 2**63
                and "." in model
                # Fewer brackets than the nesting limit: nothing nests deeper.
                and text.buf.count("[", start, end) + text.buf.count("{", start, end) <= MAX_NESTING
            ):
                name = model.lower()
                if len(name) <= MAX_MODEL_NAME:
                    self._position += 1
                    ordinal = self._ordinals[name] = self._ordinals.get(name, 0) + 1
                    return Row(name, ordinal, pk, fields)
        return self._item(element, suspect)

    def _scan(self) -> tuple[Any, int]:
        """Decodes the value at ``pos``, reading on while it is cut by the end of the text.

        Returns:
            (the value, the position after it); ``pos`` still points at the value.

        Raises:
            RecursionError: the value is nested too deep to decode.
            _Unreadable: the value holds a number Python cannot hold.
            ExportFormatError: not JSON, or the export ends inside the value.
        """
        text = self._text
        while True:
            try:
                return self._scan_once(text.buf, text.pos)
            except StopIteration as exc:
                at, message = exc.value, "expected a value"
            except json.JSONDecodeError as exc:
                at, message = exc.pos, exc.msg
            except _NotJson as exc:
                raise self._not_json(str(exc), text.pos) from None
            except RecursionError:
                raise
            except ValueError:  # Python converts integers of at most 4300 digits
                raise _Unreadable(
                    f"an integer of more than {sys.get_int_max_str_digits()} digits"
                ) from None
            unterminated = message.startswith("Unterminated string")
            if unterminated or at >= len(text.buf) - _CUT_MARGIN:
                if self._more(len(text.buf) - text.pos):
                    continue
                if unterminated or at >= len(text.buf):
                    raise self._cut_short()
            raise self._not_json(message, at)

    def _partly_read_element(self, problem: str) -> BadRow:
        """Reads an element that cannot be decoded whole, skipping the values that fail,
        to name its model and pk in the ``BadRow``."""
        text = self._text
        if text.buf[text.pos] != "{":
            kind = "a list" if text.buf[text.pos] == "[" else "a number"
            self._skip_value()
            self._position += 1
            return BadRow(
                self._position,
                "<unknown>",
                self._position,
                None,
                f"an element of the export must be an object, not {kind} ({problem})",
            )
        element, problems = self._read_object_partly(top=True)
        self._position += 1
        surrogate = _unpaired_surrogate(element)
        name = None
        if surrogate is None or not surrogate[1]:
            name, _ = _model_name(element)
        if surrogate is not None:
            problems.insert(0, surrogate[0])
        if not problems:  # decoded member by member, a value was shallow enough for Python
            problems.append(check_row(element)[1] or "it cannot be decoded")
        ordinal = self._next_ordinal(name)
        pk = element.get("pk")
        return BadRow(
            self._position,
            name or "<unknown>",
            ordinal,
            None if isinstance(pk, (dict, list)) else pk,
            "; ".join(problems),
        )

    def _read_object_partly(self, *, top: bool) -> tuple[dict, list[str]]:
        """Reads the object at ``pos`` member by member: what decodes, and the problems
        of what does not (skipped). At the top, ``fields`` is read the same way."""
        text = self._text
        result: dict[str, Any] = {}
        problems: list[str] = []
        text.pos += 1
        mark = self._peek()
        while mark != "}":
            if mark != '"':
                raise self._not_json("expected a key in double quotes", text.pos)
            key, text.pos = self._scan()
            if self._peek() != ":":
                raise self._not_json("expected ':'", text.pos)
            text.pos += 1
            mark = self._peek()
            where = _quote(key) if top else f"field {_quote(key)}"
            if top and key == "fields" and mark == "{":
                result[key], inner = self._read_object_partly(top=False)
                problems += inner
            else:
                try:
                    result[key], text.pos = self._scan()
                except RecursionError:
                    self._skip_value()
                    problems.append(f"{where} is nested more than {MAX_NESTING} levels deep")
                except _Unreadable as exc:
                    self._skip_value()
                    problems.append(f"{where}: {exc}")
            mark = self._peek()
            if mark == ",":
                text.pos += 1
                mark = self._peek()
            elif mark != "}":
                raise self._not_json("expected ',' or '}'", text.pos)
        text.pos += 1
        return result, problems

    def _skip_value(self) -> None:
        """Consumes the value at ``pos`` without building it, in bounded memory (the
        text is dropped as it is passed). It is not checked: its row is refused anyway."""
        text = self._text
        if text.buf[text.pos] not in '"[{':
            while True:
                text.pos = _SCALAR.match(text.buf, text.pos).end()
                if text.pos < len(text.buf) or not self._more():
                    return
        depth = 0
        in_string = False
        while True:
            buf, pos = text.buf, text.pos
            while pos < len(buf):
                if in_string:
                    end = _STRING_REST.match(buf, pos).end()
                    if end == len(buf) or buf[end] != '"':
                        pos = end  # keep an escape the end of the text cut
                        break
                    pos = end + 1
                    in_string = False
                else:
                    found = _CONTAINER_MARK.search(buf, pos)
                    if found is None:
                        pos = len(buf)
                        break
                    pos = found.end()
                    mark = found.group()
                    if mark == '"':
                        in_string = True
                        continue
                    depth += 1 if mark in "[{" else -1
                if depth == 0:
                    text.pos = pos
                    return
            text.pos = pos
            if not self._more():
                raise self._cut_short()

    def _item(self, element: Any, suspect: bool) -> Row | BadRow:
        self._position += 1
        surrogate = _unpaired_surrogate(element) if suspect else None
        name, problem = check_row(element)
        if surrogate is not None:
            problem = surrogate[0]
            if surrogate[1]:
                name = None
        ordinal = self._next_ordinal(name)
        if problem is not None:
            pk = element.get("pk") if isinstance(element, dict) else None
            if isinstance(pk, (dict, list)):
                pk = None  # nothing deep crosses the pipeline
            return BadRow(self._position, name or "<unknown>", ordinal, pk, problem)
        assert name is not None
        return Row(name, ordinal, element["pk"], element["fields"])

    def _next_ordinal(self, name: str | None) -> int:
        if name is None:
            return self._position
        ordinal = self._ordinals[name] = self._ordinals.get(name, 0) + 1
        return ordinal

    def _not_json(self, problem: str, at: int) -> ExportFormatError:
        offset = self._text_offset(at)
        return ExportFormatError(
            f"the export is not valid JSON after element {self._position}: {problem} "
            f"(at character {offset})"
        )

    def _cut_short(self) -> ExportFormatError:
        return ExportFormatError(
            f"the export is not valid JSON after element {self._position}: it ends in the "
            f"middle of element {self._position + 1} (premature EOF)"
        )

    def _text_offset(self, at: int) -> int:
        return self._text.consumed + at


def iter_export(stream: BinaryIO) -> Iterator[Row | BadRow]:
    """Yields the rows of an export, in file order.

    Args:
        stream: the export, opened for binary reading (any readable object).

    Raises:
        ExportFormatError: the input is not a JSON array, or is not valid JSON (truncated,
            invalid UTF-8, ...). The message gives the position of the last good element.
    """
    yield from _open_reader(stream).items()


def iter_export_with_starts(stream: BinaryIO) -> Iterator[tuple[int, Row | BadRow]]:
    """Yields ``(start, row)`` for the rows of an export, in file order: ``start`` is
    where the row's element begins, in characters from the start of the export (a
    property of the text, the same for every reader of it). As ``iter_export``."""
    reader = _open_reader(stream)
    for item in reader.items():
        yield reader.start, item


def _open_reader(stream: BinaryIO) -> _Reader:
    """A reader of the export's array, once its first bytes say it may be one."""
    stream = _peekable(stream)
    raw = stream.peek(512)[:512]
    head = raw.lstrip()
    if raw[257:262] == b"ustar":
        raise ExportFormatError(
            "this file looks like an encrypted export tarball: "
            "pass --decrypt-with or --decrypt-with-gcp-kms"
        )
    if not head:
        raise ExportFormatError("the export is empty: expected a JSON array of rows")
    if not head.startswith(b"["):
        raise ExportFormatError(
            f"the export must be a JSON array of rows; it starts with {head[:16]!r}"
        )
    return _Reader(stream)


def _peekable(stream: BinaryIO) -> io.BufferedReader:
    """Wraps a stream so its first bytes can be inspected without consuming them."""
    if isinstance(stream, io.BufferedReader):
        return stream
    return io.BufferedReader(_RawAdapter(stream), buffer_size=1 << 16)


class _RawAdapter(io.RawIOBase):
    """Adapts any object with ``read(n)`` to the raw-stream interface."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
