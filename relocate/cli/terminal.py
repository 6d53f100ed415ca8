"""Text from an export, made safe to print on a terminal.

Model names, field values and the reasons that quote them come from the file, and a
terminal acts on some characters: ESC and CSI start control sequences (colours, cursor
moves, window titles, clearing the screen), CR and newlines forge lines, bidi overrides
reorder what is shown. ``terminal_safe`` escapes every character that is not printable,
repr-style (``\\x1b``, ``\\n``, ``\\u202e``), so what is printed shows what the file holds.
The findings and report files keep the exact values (their JSON escapes them).
"""

from __future__ import annotations

import logging

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def terminal_safe(text: object) -> str:
    """``text`` with every non-printable character escaped, repr-style.

    Non-printable is Python's ``str.isprintable``: the C0 and C1 controls (ESC, CR, LF,
    BEL, CSI, NEL...), DEL, format characters (bidi overrides and isolates, marks),
    line and paragraph separators, surrogates, unassigned and private-use code points.
    Printable text, other scripts included, is left as it is.
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


class SafeFormatter(logging.Formatter):
    """A log formatter whose messages are ``terminal_safe`` (a traceback, when a record
    carries one, is added below the message as it is)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return terminal_safe(super().formatMessage(record))
