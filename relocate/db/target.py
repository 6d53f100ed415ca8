"""The target database: its connection string, with credentials resolved where it is used.

What travels with the pipeline (``ImportSettings``, pickled into every DoFn and shown by
Dataflow) is a DSN without credentials and the *names* of secrets. The credentials are
resolved here, in whichever process opens the connection:

- ``dsn_secret``: a Secret Manager secret holding the whole DSN (key/value or URI form);
  ``dsn`` is then empty.
- ``password_secret``: a Secret Manager secret holding the password, added to the DSN.
- neither: the DSN as given, so libpq's own mechanisms apply: ``service=NAME`` with
  ``PGSERVICEFILE``, the password file (``PGPASSFILE``, ``~/.pgpass``), and the ``PG*``
  environment variables for whatever the DSN leaves out (an empty DSN takes them all).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from relocate.db.secrets import SecretError, read_secret

#: Seconds a secret's value is reused in one process before it is read again: DoFns
#: reconnect per bundle under a connection cap, and a rotated secret is picked up soon.
SECRET_TTL = 300.0

_cache: dict[tuple[str, str | None], tuple[float, str]] = {}
_cache_lock = threading.Lock()


class TargetLike(Protocol):
    """Where the target is: ``ImportSettings`` or ``Target``."""

    @property
    def dsn(self) -> str: ...
    @property
    def dsn_secret(self) -> str | None: ...
    @property
    def password_secret(self) -> str | None: ...
    @property
    def secret_endpoint(self) -> str | None: ...


@dataclass(frozen=True)
class Target:
    """A target outside an import (``schema create``, ``rollback``)."""

    dsn: str = field(default="", repr=False)  # may carry a password when given in clear
    dsn_secret: str | None = None
    password_secret: str | None = None
    secret_endpoint: str | None = None


def _secret(name: str, endpoint: str | None) -> str:
    key = (name, endpoint)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and now - hit[0] < SECRET_TTL:
            return hit[1]
    value = read_secret(name, endpoint=endpoint)
    with _cache_lock:
        _cache[key] = (now, value)
    return value


def forget_secrets() -> None:
    """Drops the secret values this process has cached (tests, rotation)."""
    with _cache_lock:
        _cache.clear()


def conninfo(target: TargetLike) -> str:
    """The libpq connection string of the target, credentials included.

    Call it only where the connection is opened: the result may hold a password.

    Raises:
        SecretError: a secret could not be read, or the DSN secret is not a valid libpq
            connection string.
        ValueError: a secret name is malformed, or both ``dsn`` and ``dsn_secret`` are set.
    """
    dsn = target.dsn or ""
    if target.dsn_secret:
        if dsn:
            raise ValueError("give the DSN either in clear (dsn) or as a secret, not both")
        dsn = _secret(target.dsn_secret, target.secret_endpoint)
        try:
            conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            # libpq's message quotes the string, which may hold the password: say less.
            raise SecretError(
                f"secret {target.dsn_secret} does not hold a valid libpq connection string "
                "(key=value pairs or a postgresql:// URI)"
            ) from None
    if target.password_secret:
        dsn = make_conninfo(dsn, password=_secret(target.password_secret, target.secret_endpoint))
    return dsn


def connect(target: TargetLike, **kwargs: Any) -> psycopg.Connection:
    """Opens a connection to the target; ``kwargs`` are connection parameters or
    ``psycopg.connect`` options (``autocommit``, ``connect_timeout``, ...)."""
    return psycopg.connect(conninfo(target), **kwargs)


def has_password(dsn: str) -> bool:
    """Whether a DSN given in clear carries a password (False when it does not parse)."""
    try:
        return bool(conninfo_to_dict(dsn).get("password"))
    except psycopg.ProgrammingError:
        return False
