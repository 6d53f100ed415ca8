"""Reads database credentials from Google Cloud Secret Manager.

A secret is named by its resource name, ``projects/P/secrets/S/versions/V`` or
``projects/P/secrets/S`` (which means ``versions/latest``). The value is read where a
connection is opened (in the Beam worker), so it never enters pipeline options or the
pickled job graph. The client is Google's own ``google-cloud-secret-manager``, imported
only when a secret is used; it authenticates with Application Default Credentials (on
Dataflow: the worker service account, which needs ``roles/secretmanager.secretAccessor``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from relocate.io.crypto import crc32c

#: What a secret name must look like, for error messages.
EXPECTED_FORM = "projects/PROJECT/secrets/SECRET[/versions/VERSION]"

_SEGMENT = r"[A-Za-z0-9_-]+"
_NAME = re.compile(
    rf"projects/(?P<project>{_SEGMENT})/secrets/(?P<secret>{_SEGMENT})"
    rf"(?:/versions/(?P<version>latest|[0-9]+))?"
)


class SecretError(RuntimeError):
    """A secret could not be read: missing, not permitted, unreachable or malformed."""


def version_name(name: str) -> str:
    """The full secret version name for ``name``.

    Args:
        name: ``projects/P/secrets/S/versions/V`` or ``projects/P/secrets/S``.

    Returns:
        ``projects/P/secrets/S/versions/V`` (``latest`` when no version is given).

    Raises:
        ValueError: ``name`` is not a secret (version) resource name.
    """
    match = _NAME.fullmatch(name.strip()) if isinstance(name, str) else None
    if match is None:
        raise ValueError(
            f"{name!r} is not a Secret Manager secret name: expected {EXPECTED_FORM} "
            "(without a version, the latest one is read)"
        )
    version = match.group("version") or "latest"
    return f"projects/{match.group('project')}/secrets/{match.group('secret')}/versions/{version}"


@contextlib.contextmanager
def _client(endpoint: str | None) -> Iterator[Any]:
    """A Secret Manager client, closed after use.

    ``endpoint`` None means Google's endpoint with Application Default Credentials. A
    loopback ``HOST:PORT`` (the local server of the tests) gets a plaintext channel and
    anonymous credentials; any other endpoint keeps TLS and ADC.
    """
    from google.cloud import secretmanager
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
        SecretManagerServiceGrpcTransport,
    )

    from relocate.io.google_clients import google_client

    client = google_client(
        secretmanager.SecretManagerServiceClient, SecretManagerServiceGrpcTransport, endpoint
    )
    with client:
        yield client


def read_secret(name: str, *, endpoint: str | None = None, timeout: float = 60.0) -> str:
    """The value of a secret version, as text.

    One trailing newline is removed: ``echo ... | gcloud secrets versions add
    --data-file=-`` stores one, and it is never part of a password or a DSN.

    Args:
        name: ``projects/P/secrets/S/versions/V``, or ``projects/P/secrets/S`` for the
            latest version.
        endpoint: ``HOST:PORT`` of the Secret Manager API (tests); None for Google's.
        timeout: seconds to keep retrying an unavailable service before giving up.

    Raises:
        ValueError: ``name`` is not a secret name.
        SecretError: the secret is missing, not accessible, unreachable, corrupted in
            transit or not UTF-8 text.
    """
    full = version_name(name)
    from google.api_core import exceptions as gexc
    from google.api_core import retry as gretry
    from google.auth import exceptions as auth_exc

    # The client's own retry waits up to 60 s on UNAVAILABLE; bound it by ``timeout``.
    retry = gretry.Retry(
        initial=0.5,
        maximum=10.0,
        multiplier=2.0,
        predicate=gretry.if_exception_type(gexc.ServiceUnavailable, gexc.ResourceExhausted),
        timeout=timeout,
    )
    where = f"Secret Manager at {endpoint}" if endpoint else "Secret Manager"
    try:
        with _client(endpoint) as client:
            response = client.access_secret_version(
                request={"name": full}, retry=retry, timeout=timeout
            )
    except gexc.NotFound:
        raise SecretError(f"secret {full} not found (or it has no such version)") from None
    except gexc.PermissionDenied:
        raise SecretError(
            f"permission denied reading secret {full}: the account needs "
            "roles/secretmanager.secretAccessor on it (or the secret does not exist)"
        ) from None
    except (gexc.RetryError, gexc.ServiceUnavailable, gexc.DeadlineExceeded) as exc:
        raise SecretError(f"could not reach {where} to read secret {full}: {exc}") from None
    except auth_exc.DefaultCredentialsError as exc:
        raise SecretError(
            f"no Google credentials to read secret {full}: {str(exc).splitlines()[0]}"
        ) from None
    except gexc.GoogleAPIError as exc:
        raise SecretError(f"reading secret {full} failed: {exc}") from None
    payload = response.payload
    # As Google advises: check the payload's CRC32C, so a corrupted value is not used.
    if "data_crc32c" in payload and payload.data_crc32c != crc32c(payload.data):
        raise SecretError(f"secret {full} arrived corrupted (CRC32C mismatch)")
    try:
        value = payload.data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"secret {full} is not UTF-8 text") from None
    if value.endswith("\n"):
        value = value[:-2] if value.endswith("\r\n") else value[:-1]
    return value
