"""A local stand-in for Google Cloud Secret Manager, for tests: no network, no credentials.

It serves ``AccessSecretVersion`` (all that reading a secret needs) on ``127.0.0.1`` over
plaintext gRPC, with secrets held in memory. Messages are google-cloud-secret-manager's
own protobuf types, so the real ``SecretManagerServiceClient`` talks to it unchanged
(see ``relocate.db.secrets``). Like ``kms_server``, the methods are registered with a generic
handler under the real service name; every other method answers ``UNIMPLEMENTED``.

Behaviour follows the real service: an unknown secret or version is ``NOT_FOUND``, a
secret marked with ``deny`` is ``PERMISSION_DENIED``, a disabled version is
``FAILED_PRECONDITION``, and payloads carry their CRC32C.

Usage::

    with LocalSecretManagerServer() as sm:
        name = sm.add("projects/p/secrets/db-password", "s3cret")  # .../versions/1
        read_secret("projects/p/secrets/db-password", endpoint=sm.endpoint)
"""

from __future__ import annotations

import re
import threading

import grpc
from google.cloud.secretmanager_v1 import types as sm_types

from relocate.io.crypto import crc32c
from relocate.testing.grpc_server import LocalGrpcServer

SERVICE_NAME = "google.cloud.secretmanager.v1.SecretManagerService"

_VERSION = re.compile(r"(?P<secret>projects/[^/]+/secrets/[^/]+)/versions/(?P<version>[^/]+)")


class LocalSecretManagerServer(LocalGrpcServer):
    """Secrets in memory behind a local gRPC Secret Manager API.

    Attributes:
        port: The TCP port, once started.
        corrupt_response_checksum: When true, payloads carry a wrong CRC32C.
    """

    SERVICE_NAME = SERVICE_NAME

    def __init__(self) -> None:
        super().__init__()
        self.corrupt_response_checksum = False
        self._lock = threading.Lock()
        self._versions: dict[str, list[bytes]] = {}  # secret name -> versions 1..N
        self._disabled: set[str] = set()
        self._denied: set[str] = set()
        self._accessed: list[str] = []

    @property
    def accessed(self) -> list[str]:
        """Version names requested so far, oldest first."""
        with self._lock:
            return list(self._accessed)

    def add(self, secret: str, value: str | bytes) -> str:
        """Adds a version to ``secret`` (``projects/P/secrets/S``, created if new).

        Returns:
            The new version's name, ``projects/P/secrets/S/versions/N``.
        """
        data = value.encode("utf-8") if isinstance(value, str) else value
        with self._lock:
            versions = self._versions.setdefault(secret, [])
            versions.append(data)
            return f"{secret}/versions/{len(versions)}"

    def disable(self, version: str) -> None:
        """Disables one version (``projects/P/secrets/S/versions/N``)."""
        with self._lock:
            self._disabled.add(version)

    def deny(self, secret: str) -> None:
        """Makes every access to ``secret`` (``projects/P/secrets/S``) PERMISSION_DENIED."""
        with self._lock:
            self._denied.add(secret)

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {
            "AccessSecretVersion": grpc.unary_unary_rpc_method_handler(
                self._access_secret_version,
                request_deserializer=sm_types.AccessSecretVersionRequest.deserialize,
                response_serializer=sm_types.AccessSecretVersionResponse.serialize,
            ),
        }

    def _access_secret_version(
        self, request: sm_types.AccessSecretVersionRequest, context: grpc.ServicerContext
    ) -> sm_types.AccessSecretVersionResponse:
        with self._lock:
            self._accessed.append(request.name)
            match = _VERSION.fullmatch(request.name)
            if match is None:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Invalid resource field value in the request: {request.name}",
                )
            secret, version = match.group("secret"), match.group("version")
            if secret in self._denied:
                # The real service's wording: it does not say whether the secret exists.
                context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"Permission 'secretmanager.versions.access' denied for resource "
                    f"'{request.name}' (or it may not exist).",
                )
            versions = self._versions.get(secret, [])
            if version == "latest":
                enabled = [
                    n
                    for n in range(len(versions), 0, -1)
                    if f"{secret}/versions/{n}" not in self._disabled
                ]
                number = enabled[0] if enabled else 0
            else:
                number = int(version) if version.isdigit() else 0
            if not 1 <= number <= len(versions):
                context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"Secret Version [{request.name}] not found.",
                )
            full = f"{secret}/versions/{number}"
            if full in self._disabled:
                context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Secret Version [{full}] is in DISABLED state.",
                )
            data = versions[number - 1]
            checksum = crc32c(data)
            if self.corrupt_response_checksum:
                checksum = (checksum + 1) % 2**32
        return sm_types.AccessSecretVersionResponse(
            name=full,
            payload=sm_types.SecretPayload(data=data, data_crc32c=checksum),
        )
