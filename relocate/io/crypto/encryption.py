"""Encrypting an export into Sentry's tarball (``backup encrypt``, encrypted exports).

Composes the pieces: the public key (a PEM file, or fetched from Cloud KMS), a fresh
Fernet data key wrapped with RSA-OAEP, the streamed Fernet token, and the tar writer.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric import rsa

from relocate.io.crypto.errors import (
    ENCRYPT_FLAG_REQUIRED,
    ENCRYPT_FLAGS_EXCLUSIVE,
    EncryptionError,
    UsageError,
)
from relocate.io.crypto.fernet_stream import (
    _b64encode_chunks,
    _fernet_encrypt_chunks,
    _fernet_token_length,
    _generate_key,
)
from relocate.io.crypto.kms import _kms_public_key_pem, validate_kms_config
from relocate.io.crypto.rsa_keys import _canonical_public_pem, _load_public_key, _wrap_data_key
from relocate.io.crypto.streams import _buffered, _is_seekable
from relocate.io.crypto.tarball import _write_members


def _public_key_for_encryption(
    public_key_pem: bytes | None,
    kms_config: dict[str, str] | None,
    kms_endpoint: str | None,
) -> tuple[rsa.RSAPublicKey, bytes]:
    if (public_key_pem is None) == (kms_config is None):
        raise UsageError(
            ENCRYPT_FLAGS_EXCLUSIVE if public_key_pem is not None else ENCRYPT_FLAG_REQUIRED
        )
    if kms_config is not None:
        pem = _kms_public_key_pem(validate_kms_config(kms_config, EncryptionError), kms_endpoint)
    else:
        assert public_key_pem is not None
        pem = public_key_pem
    key = _load_public_key(pem)
    if kms_config is None:
        # Canonical SubjectPublicKeyInfo PEM: exactly what a decryptor re-derives from the
        # private key and compares byte for byte (a PKCS#1 or CRLF file would not match).
        pem = _canonical_public_pem(key)
    return key, pem


def encrypt_export(
    plaintext: BinaryIO,
    dest: BinaryIO,
    *,
    public_key_pem: bytes | None = None,
    kms_config: dict[str, str] | None = None,
    kms_endpoint: str | None = None,
    size: int | None = None,
) -> None:
    """Write ``plaintext`` to ``dest`` as an encrypted tarball in Sentry's layout.

    Streams: the Fernet token is produced chunk by chunk. When the plaintext length is
    known (``size``, or measured on a seekable source) the token goes straight into the
    tar; otherwise the token (ciphertext) is spooled to a temporary file first.

    Args:
        plaintext: The JSON export bytes, read from the current position to EOF.
        dest: Where the tarball is written (may be non-seekable, e.g. stdout).
        public_key_pem: An RSA public key in PEM (``--encrypt-with``).
        kms_config: The five KMS fields (``--encrypt-with-gcp-kms``); the public key
            comes from KMS ``GetPublicKey``.
        kms_endpoint: ``HOST:PORT`` of the KMS API; ``None`` for Google's.
        size: The number of plaintext bytes, if known.

    Raises:
        UsageError: Not exactly one of ``public_key_pem`` and ``kms_config``.
        EncryptionError: The key is unusable or KMS failed.
    """
    key, pem = _public_key_for_encryption(public_key_pem, kms_config, kms_endpoint)
    key_text = _generate_key()
    wrapped_key = _wrap_data_key(key, key_text)
    if size is None and _is_seekable(plaintext):
        # seek() then tell(): Beam's CompressedFile.seek() returns None.
        start = plaintext.tell()
        plaintext.seek(0, io.SEEK_END)
        size = plaintext.tell() - start
        plaintext.seek(start)

    with contextlib.ExitStack() as stack:
        if size is not None:
            token: BinaryIO = _buffered(
                _b64encode_chunks(_fernet_encrypt_chunks(plaintext, key_text, size))
            )
            token_length = _fernet_token_length(size)
        else:
            # The tar header states the member's size up front: with no size to compute
            # it from, the token (ciphertext only) is spooled and measured first.
            token = stack.enter_context(tempfile.TemporaryFile(prefix="relocate-token-"))
            for chunk in _b64encode_chunks(_fernet_encrypt_chunks(plaintext, key_text, None)):
                token.write(chunk)
            token_length = token.tell()
            token.seek(0)
        _write_members(dest, token, token_length, wrapped_key, pem)
