"""A local stand-in for Google Cloud KMS, for tests: no network, no credentials.

It serves the two RPCs the backup encryption uses, ``AsymmetricDecrypt`` and
``GetPublicKey``, on ``127.0.0.1`` over plaintext gRPC, backed by a real RSA key. The
request and response messages are google-cloud-kms's own protobuf types, so the real
``KeyManagementServiceClient`` talks to it unchanged. The package ships no generated
servicer base class, so the methods are registered with a generic handler under the
real service name; every other method answers ``UNIMPLEMENTED``.

Usage::

    with LocalKmsServer() as kms:
        encrypt_export(src, dest, kms_config=kms.config, kms_endpoint=kms.endpoint)
        kms.corrupt_response_checksum = True  # to exercise the in-transit check
"""

from __future__ import annotations

import threading
from typing import Any

import grpc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.cloud.kms_v1 import types as kms_types

from relocate.io.crypto import crc32c, kms_key_version_name
from relocate.testing.grpc_server import LocalGrpcServer

SERVICE_NAME = "google.cloud.kms.v1.KeyManagementService"

_OAEP_SHA256 = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)
_ALGORITHM = kms_types.CryptoKeyVersion.CryptoKeyVersionAlgorithm


def _algorithm(key_size: int) -> kms_types.CryptoKeyVersion.CryptoKeyVersionAlgorithm:
    """The KMS algorithm name of an RSA-OAEP-SHA256 decryption key of this size."""
    return getattr(
        _ALGORITHM, f"RSA_DECRYPT_OAEP_{key_size}_SHA256", _ALGORITHM.RSA_DECRYPT_OAEP_2048_SHA256
    )


class LocalKmsServer(LocalGrpcServer):
    """One asymmetric-decryption CryptoKeyVersion behind a local gRPC KMS API.

    Attributes:
        private_key: The RSA key (generated unless given).
        config: The KMS config naming the key, as ``--decrypt-with-gcp-kms`` reads it.
        key_version_name: The full resource name the server answers to.
        corrupt_response_checksum: When true, responses carry a wrong CRC32C
            (``plaintext_crc32c`` / ``pem_crc32c``), as if corrupted in transit.
        port: The TCP port, once started.
    """

    SERVICE_NAME = SERVICE_NAME

    def __init__(
        self,
        *,
        private_key: rsa.RSAPrivateKey | None = None,
        project_id: str = "test-project",
        location: str = "global",
        key_ring: str = "relocation",
        key: str = "relocation",
        version: str = "1",
    ) -> None:
        self.private_key = private_key or rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
        self.config = {
            "project_id": project_id,
            "location": location,
            "key_ring": key_ring,
            "key": key,
            "version": version,
        }
        self.key_version_name = kms_key_version_name(self.config)
        self.corrupt_response_checksum = False
        super().__init__()
        self._lock = threading.Lock()
        self._requests: list[tuple[str, Any]] = []

    @property
    def public_key_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM, as KMS returns it."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def requests(self) -> list[tuple[str, Any]]:
        """The (method, request message) pairs received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        return {
            "AsymmetricDecrypt": grpc.unary_unary_rpc_method_handler(
                self._asymmetric_decrypt,
                request_deserializer=kms_types.AsymmetricDecryptRequest.deserialize,
                response_serializer=kms_types.AsymmetricDecryptResponse.serialize,
            ),
            "GetPublicKey": grpc.unary_unary_rpc_method_handler(
                self._get_public_key,
                request_deserializer=kms_types.GetPublicKeyRequest.deserialize,
                response_serializer=kms_types.PublicKey.serialize,
            ),
        }

    def _record(self, method: str, request: Any) -> None:
        with self._lock:
            self._requests.append((method, request))

    def _check_name(self, name: str, context: grpc.ServicerContext) -> None:
        if name != self.key_version_name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{name} not found.")

    def _checksum(self, data: bytes) -> int:
        value = crc32c(data)
        return (value + 1) % 2**32 if self.corrupt_response_checksum else value

    def _asymmetric_decrypt(
        self, request: kms_types.AsymmetricDecryptRequest, context: grpc.ServicerContext
    ) -> kms_types.AsymmetricDecryptResponse:
        self._record("AsymmetricDecrypt", request)
        self._check_name(request.name, context)
        # Like KMS: a checksum that was sent must match, or the request is refused.
        sent = request.ciphertext_crc32c
        if sent is not None and sent != crc32c(request.ciphertext):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "The checksum in field ciphertext_crc32c did not match the data in "
                "field ciphertext.",
            )
        try:
            plaintext = self.private_key.decrypt(request.ciphertext, _OAEP_SHA256)
        except ValueError:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Decryption failed: verify that 'name' refers to the correct CryptoKeyVersion.",
            )
        return kms_types.AsymmetricDecryptResponse(
            plaintext=plaintext,
            plaintext_crc32c=self._checksum(plaintext),
            verified_ciphertext_crc32c=sent is not None,
            protection_level=kms_types.ProtectionLevel.SOFTWARE,
        )

    def _get_public_key(
        self, request: kms_types.GetPublicKeyRequest, context: grpc.ServicerContext
    ) -> kms_types.PublicKey:
        self._record("GetPublicKey", request)
        self._check_name(request.name, context)
        pem = self.public_key_pem
        return kms_types.PublicKey(
            pem=pem.decode("ascii"),
            pem_crc32c=self._checksum(pem),
            algorithm=_algorithm(self.private_key.key_size),
            name=self.key_version_name,
            protection_level=kms_types.ProtectionLevel.SOFTWARE,
        )
