"""New values for tokens and keys that collide with rows already in the target."""

from __future__ import annotations

import re
import secrets
import uuid

_PREFIX = re.compile(r"^(sntry[a-z]_)")


def fresh_token(old: str | None) -> str:
    """A new random token shaped like ``old`` (Sentry's ``sntryu_``-style prefix kept)."""
    match = _PREFIX.match(old or "")
    return (match.group(1) if match else "") + secrets.token_hex(32)


def fresh_key() -> str:
    """A new project key (32 hex characters, like Sentry's ``uuid4().hex``)."""
    return uuid.uuid4().hex


def fresh_uuid() -> str:
    return str(uuid.uuid4())
