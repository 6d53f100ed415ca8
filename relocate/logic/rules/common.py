"""Helpers shared by the per-model rules: Sentry's unique-name scheme, secrets, hashes."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import unicodedata
import uuid
from collections.abc import Callable, Iterator

#: Sentry's suffix alphabet, as written in ``unique_db_instance``
#: (``src/sentry/db/models/utils.py``): no "8", and "0" twice.
SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456790"
#: (number of tries, suffix length) in the order Sentry tries them: 28 tries in all.
SUFFIX_PLAN = ((1, 2), (5, 3), (20, 5), (1, 12))

_ALNUM = string.ascii_letters + string.digits


def random_string(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def unique_candidates(base: str, max_length: int) -> Iterator[str]:
    """Yields the names Sentry's ``unique_db_instance`` tries for ``base``.

    The base is ``strip()``ped, and an empty one becomes 12 random hex characters
    (``uuid4().hex[:12]``). The base itself comes first unless it is all digits
    (``isdecimal()``: an all-digit value is always suffixed); then ``<base>-<suffix>``,
    the base cut to ``max_length - len(suffix) - 1``.
    """
    base = base.strip() or uuid.uuid4().hex[:12]
    if not base.isdecimal():
        yield base[:max_length]
    for tries, length in SUFFIX_PLAN:
        for _ in range(tries):
            suffix = random_string(length, SUFFIX_ALPHABET)
            yield f"{base[: max_length - length - 1]}-{suffix}"


def first_free(base: str, max_length: int, taken: Callable[[str], bool]) -> str | None:
    """The first candidate name that ``taken`` says is free, or None when all are taken."""
    for candidate in unique_candidates(base, max_length):
        if not taken(candidate):
            return candidate
    return None


def slugify(value: str) -> str:
    """Django's slugify: ASCII, lower-case, alphanumerics, hyphens and underscores."""
    value = unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value.lower())
    return re.sub(r"[-\s]+", "-", value).strip("-_")


def unusable_password() -> str:
    """A password nobody knows: Django's unusable-password marker with 40 random chars.

    No password matches it, so the account can only be claimed through the
    LostPasswordHash written beside it (Sentry's claim flow). Sentry hashes a random
    password instead, at ~0.3 s per user; the effect for the user is the same.
    """
    return "!" + secrets.token_urlsafe(30)  # 40 characters, one call to the OS


def secure_token(length: int = 32) -> str:
    """A random token of hex characters (Sentry's validation and lost-password hashes)."""
    return secrets.token_hex((length + 1) // 2)[:length]


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
