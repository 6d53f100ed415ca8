"""Turns the errors a user can cause (bad input, missing tools, no server) into messages.

Beam re-raises a DoFn's exception wrapped in its own; the original is found in the chain
or, on runners that only keep the text, by its class name in the message.
"""

from __future__ import annotations

import re

#: Error classes whose message is meant for the user, by name.
USER_ERRORS = (
    "ExportFormatError",
    "DecryptionError",
    "EncryptionError",
    "PostgresNotFound",
    "FileNotFoundError",
    "IsADirectoryError",
    "PermissionError",
    "OperationalError",
    "SecretError",
    "ImportConflict",
    "SchemaMissing",
)

_IN_TEXT = re.compile(r"(" + "|".join(USER_ERRORS) + r"): (.+?)(?:\s\[while running|\n|$)")


_BEAM_NOTE = re.compile(r"\s*\[while running '[^']*'\]")


def describe(exc: BaseException) -> str | None:
    """A one-line message for a user-caused error, or None for a bug (re-raised)."""
    message = _describe(exc)
    return None if message is None else _BEAM_NOTE.sub("", message).strip()


def _describe(exc: BaseException) -> str | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if name in USER_ERRORS:
            if isinstance(current, OSError) and current.filename:
                return f"{current.strerror}: {current.filename}"
            return str(current).strip().splitlines()[0] if str(current).strip() else name
        current = current.__cause__ or current.__context__
    match = _IN_TEXT.search(str(exc))
    if match:
        return match.group(2).strip()
    return None
