"""New values for tokens and keys that collide with rows already in the target."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Container
from datetime import timedelta
from typing import Any

from relocate.logic.rules.common import sha256_hex

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


#: Sentry's ``DEFAULT_EXPIRATION`` of API tokens (src/sentry/models/apitoken.py).
API_TOKEN_EXPIRATION = timedelta(days=30)

#: The secrets of ``sentry.apitoken`` and the columns holding their SHA-256 hashes; all
#: four are unique in the target.
API_TOKEN_SECRETS = (("token", "hashed_token"), ("refresh_token", "hashed_refresh_token"))


def settle_api_token(
    values: dict[str, Any], columns: Container[str], is_free: Callable[[str, Any], bool]
) -> list[str]:
    """Gives an API token secrets no other row holds, and hashes that describe them.

    Sentry regenerates the token and (when it has one) the refresh token of a row whose
    token or refresh token is taken. Here every unique column counts, hashes included, so
    a taken hash cannot reach the database's unique index. A secret the row lacks while
    its hash is set is made here (the column's default would make it in the database,
    where the hash cannot follow); a null refresh token has a null hash. The hashes and the
    token's last characters follow every new secret.

    Args:
        values: the row's column values; changed in place.
        columns: the columns the target table has.
        is_free: whether a value is free for a unique column (``WriteContext.is_free``).

    Returns:
        The columns given new values.
    """
    changed: set[str] = set()
    if "token" in columns and values.get("token") is None:
        values["token"] = fresh_token(None)  # NOT NULL: the default would make one
        changed.add("token")
    if values.get("refresh_token") is None and values.get("hashed_refresh_token") is not None:
        if "refresh_token" not in values and "refresh_token" in columns:
            values["refresh_token"] = fresh_token(None)
        changed.add("refresh_token")
    stale = {hashed for secret, hashed in API_TOKEN_SECRETS if secret in changed}
    taken = any(
        not is_free(column, values[column])
        for pair in API_TOKEN_SECRETS
        for column in pair
        if column not in stale and values.get(column) is not None
    )
    if taken:
        for secret, _ in API_TOKEN_SECRETS:
            if values.get(secret) is not None:
                values[secret] = fresh_token(values[secret])
                changed.add(secret)
    for secret, hashed in API_TOKEN_SECRETS:
        if secret in changed and hashed in columns:
            value = values.get(secret)
            values[hashed] = None if value is None else sha256_hex(value)
            changed.add(hashed)
    if "token" in changed and "token_last_characters" in columns:
        values["token_last_characters"] = values["token"][-4:]
    return sorted(changed)
