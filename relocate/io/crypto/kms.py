"""Google Cloud KMS: the config file of ``--*-with-gcp-kms`` and the two API calls used.

``AsymmetricDecrypt`` unwraps ``data.key`` when decrypting; ``GetPublicKey`` fetches the
RSA public key when encrypting. Both carry CRC32C checksums, checked both ways as
Google's data-integrity guidance asks. The Google libraries are imported lazily, so
that working with local keys does not pay for them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from relocate.io.crypto.checksums import crc32c
from relocate.io.crypto.errors import (
    KMS_CONFIG_FIELDS,
    KMS_REQUEST_CORRUPTED,
    KMS_RESPONSE_CORRUPTED,
    DecryptionError,
    EncryptionError,
)

KMS_CONFIG_KEYS = ("project_id", "location", "key_ring", "key", "version")
_KMS_TIMEOUT_SECONDS = 60.0


def validate_kms_config(config: object, error: type[Exception] = DecryptionError) -> dict[str, str]:
    """Check a KMS config object the way Sentry does, but stricter about types.

    Args:
        config: The parsed JSON: it must be an object with exactly the keys
            ``project_id``, ``location``, ``key_ring``, ``key`` and ``version``, all
            strings.
        error: The exception class raised (Sentry raises ``DecryptionError`` when
            decrypting and ``EncryptionError`` when encrypting, with the same text).

    Returns:
        A fresh ``dict`` with the five fields.
    """
    if (
        not isinstance(config, dict)
        or set(config) != set(KMS_CONFIG_KEYS)
        or not all(isinstance(config[k], str) for k in KMS_CONFIG_KEYS)
    ):
        raise error(KMS_CONFIG_FIELDS)
    return {k: config[k] for k in KMS_CONFIG_KEYS}


def parse_kms_config(raw: bytes, error: type[Exception] = DecryptionError) -> dict[str, str]:
    """Parse and validate the bytes of a KMS config file (see `validate_kms_config`)."""
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f"The KMS configuration is not valid JSON ({e}). {KMS_CONFIG_FIELDS}") from e
    return validate_kms_config(config, error)


def kms_key_version_name(config: dict[str, str]) -> str:
    """The CryptoKeyVersion resource name for a validated KMS config."""
    return (
        f"projects/{config['project_id']}/locations/{config['location']}"
        f"/keyRings/{config['key_ring']}/cryptoKeys/{config['key']}"
        f"/cryptoKeyVersions/{config['version']}"
    )


@contextlib.contextmanager
def _kms_client(endpoint: str | None) -> Iterator[Any]:
    """A Cloud KMS client, created here (in the worker) and closed after use.

    ``endpoint`` None means Google's endpoint with Application Default Credentials.
    A loopback ``HOST:PORT`` (a local emulator, as in the tests) gets a plaintext
    channel and anonymous credentials; any other endpoint keeps TLS and ADC.
    """
    from google.cloud import kms
    from google.cloud.kms_v1.services.key_management_service.transports.grpc import (
        KeyManagementServiceGrpcTransport,
    )

    from relocate.io.google_clients import google_client

    client = google_client(
        kms.KeyManagementServiceClient, KeyManagementServiceGrpcTransport, endpoint
    )
    with client:
        yield client


def _kms_errors() -> tuple[type[Exception], ...]:
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    return (GoogleAPIError, GoogleAuthError)


def _kms_asymmetric_decrypt(
    config: dict[str, str], endpoint: str | None, ciphertext: bytes
) -> bytes:
    name = kms_key_version_name(config)
    with _kms_client(endpoint) as client:
        try:
            response = client.asymmetric_decrypt(
                request={
                    "name": name,
                    "ciphertext": ciphertext,
                    "ciphertext_crc32c": crc32c(ciphertext),
                },
                timeout=_KMS_TIMEOUT_SECONDS,
            )
        except _kms_errors() as e:
            raise DecryptionError(
                f"Google Cloud KMS could not decrypt data.key with {name}: {e}"
            ) from e
    # Google's integrity guidance: the server saw our checksum, and its own matches.
    if not response.verified_ciphertext_crc32c:
        raise DecryptionError(KMS_REQUEST_CORRUPTED)
    if response.plaintext_crc32c != crc32c(response.plaintext):
        raise DecryptionError(KMS_RESPONSE_CORRUPTED)
    return response.plaintext


def _kms_public_key_pem(config: dict[str, str], endpoint: str | None) -> bytes:
    name = kms_key_version_name(config)
    with _kms_client(endpoint) as client:
        try:
            response = client.get_public_key(request={"name": name}, timeout=_KMS_TIMEOUT_SECONDS)
        except _kms_errors() as e:
            raise EncryptionError(
                f"Google Cloud KMS could not get the public key of {name}: {e}"
            ) from e
    pem = response.pem.encode("utf-8")
    if response.name and response.name != name:
        raise EncryptionError(KMS_REQUEST_CORRUPTED)
    if response.pem_crc32c is not None and response.pem_crc32c != crc32c(pem):
        raise EncryptionError(KMS_RESPONSE_CORRUPTED)
    return pem
