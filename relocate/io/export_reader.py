"""Streaming reader of Sentry exports: a JSON array of ``{"model", "pk", "fields"}`` rows.

The export is never held whole in memory: ijson (its C backend) yields one row at a time.
Each row gets its per-model ordinal (1-based, in file order), which names it in findings
and reports. Malformed rows do not stop the read: they come out as ``BadRow`` records
naming their position, so that the importer can report them; only a file that is not a
JSON array at all, or is cut short, raises ``ExportFormatError``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple

import ijson

#: Longest model name accepted from an export (Sentry's chunk tables use varchar(64)).
MAX_MODEL_NAME = 64
#: Deepest nesting of a field value: deeper values would overflow the recursion of the
#: pickling between pipeline steps (Sentry's own JSON fields nest a few levels).
MAX_NESTING = 100


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
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_row(element: Any) -> tuple[str | None, str | None]:
    """Returns (normalised model name, problem); problem is None for a valid row."""
    if not isinstance(element, dict):
        return None, f"an element of the export must be an object, not {type(element).__name__}"
    model = element.get("model")
    if not isinstance(model, str):
        return None, f"`model` must be a string, got {_describe(model)}"
    name = model.lower()
    if len(name) > MAX_MODEL_NAME or "." not in name:
        return None, f"`model` is not a model name of the form app.model: {_describe(model)}"
    pk = element.get("pk")
    if isinstance(pk, bool) or not isinstance(pk, int):
        return name, f"`pk` must be an integer, got {_describe(pk)}"
    if not -(2**63) <= pk < 2**63:
        return name, f"`pk` is out of the 64-bit range: {pk}"
    fields = element.get("fields")
    if not isinstance(fields, dict):
        return name, f"`fields` must be an object, got {_describe(fields)}"
    if _deeper_than(fields, MAX_NESTING):
        return name, f"a field value is nested more than {MAX_NESTING} levels deep"
    extra = set(element) - {"model", "pk", "fields"}
    if extra:
        return name, f"unexpected keys in the row: {sorted(extra)!r}"[:200]
    return name, None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` levels (iteratively: no recursion)."""
    stack = [(v, 1) for v in value.values() if isinstance(v, (dict, list))]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def iter_export(stream: BinaryIO) -> Iterator[Row | BadRow]:
    """Yields the rows of an export, in file order.

    Args:
        stream: the export, opened for binary reading (any readable object).

    Raises:
        ExportFormatError: the input is not a JSON array, or is not valid JSON (truncated,
            invalid UTF-8, ...). The message gives the position of the last good element.
    """
    ordinals: dict[str, int] = {}
    position = 0
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
    try:
        for element in ijson.items(stream, "item", use_float=True):
            position += 1
            name, problem = check_row(element)
            if name is not None:
                ordinals[name] = ordinals.get(name, 0) + 1
            if problem is not None:
                yield BadRow(
                    position=position,
                    model=name or "<unknown>",
                    ordinal=ordinals[name] if name is not None else position,
                    pk=element.get("pk") if isinstance(element, dict) else None,
                    reason=problem,
                )
                continue
            assert name is not None
            yield Row(name, ordinals[name], element["pk"], element["fields"])
    except ijson.JSONError as exc:
        raise ExportFormatError(
            f"the export is not valid JSON after element {position}: {exc}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ExportFormatError(
            f"the export is not valid UTF-8 after element {position}: {exc}"
        ) from exc


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
