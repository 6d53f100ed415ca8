"""Sentry's encrypted export tarballs, read and written in bounded memory.

The format (spec 2.3) is an uncompressed tar with three members, in this order:

* ``export.json``: a Fernet token (URL-safe base64) whose plaintext is the JSON export;
* ``data.key``: the Fernet key text (44 ASCII bytes), RSA-OAEP(SHA-256) encrypted;
* ``key.pub``: the PEM public key used to encrypt ``data.key``.

Sentry decrypts by loading everything into memory. Here the Fernet token is processed
as a stream instead: a first pass over ``export.json`` checks the token's HMAC-SHA256,
and only then a second pass decrypts AES-128-CBC chunk by chunk, so memory stays flat
whatever the size of the export. Plaintext never touches the disk: a non-seekable
source is spooled to a temporary file *before* decryption, which holds ciphertext only.

The data key is unwrapped either with a local RSA private key (after checking that
its public key matches ``key.pub`` byte for byte, as Sentry does) or by Google Cloud
KMS ``AsymmetricDecrypt`` (with CRC32C integrity checks on request and response).

One module per part; this package re-exports the API callers use:

* :mod:`.errors`: Sentry's error texts and the exception classes;
* :mod:`.checksums`: CRC-32C for Google's integrity checks;
* :mod:`.streams`: chunk iterators as file objects, seekability probes;
* :mod:`.sniff`: telling a tarball from plain JSON by its first bytes;
* :mod:`.tarball`: the three-member tar layout, read and written;
* :mod:`.rsa_keys`: PEM key loading and RSA-OAEP wrapping of the data key;
* :mod:`.kms`: the KMS config file and the Cloud KMS calls;
* :mod:`.fernet_stream`: Fernet tokens encrypted and decrypted chunk by chunk;
* :mod:`.decryption`: :class:`DecryptionSpec` and the streamed plaintext;
* :mod:`.encryption`: writing an export as an encrypted tarball.
"""

from __future__ import annotations

from relocate.io.crypto.checksums import crc32c
from relocate.io.crypto.decryption import DecryptionSpec, decrypt_to, open_plaintext
from relocate.io.crypto.encryption import encrypt_export
from relocate.io.crypto.errors import (
    DECRYPT_FLAG_REQUIRED,
    DECRYPT_FLAGS_EXCLUSIVE,
    ENCRYPT_FLAG_REQUIRED,
    ENCRYPT_FLAGS_EXCLUSIVE,
    ENCRYPTED_INPUT_WITHOUT_KEY,
    KMS_CONFIG_FIELDS,
    KMS_REQUEST_CORRUPTED,
    KMS_RESPONSE_CORRUPTED,
    MISSING_MEMBER,
    NOT_A_FERNET_TOKEN,
    PLAIN_INPUT_WITH_KEY,
    PUBLIC_KEY_MISMATCH,
    TOKEN_TAMPERED,
    DecryptionError,
    EncryptionError,
    UsageError,
)
from relocate.io.crypto.kms import KMS_CONFIG_KEYS as KMS_CONFIG_KEYS
from relocate.io.crypto.kms import (
    kms_key_version_name,
    parse_kms_config,
    validate_kms_config,
)
from relocate.io.crypto.sniff import (
    input_kind_error,
    is_probably_plain_json,
    is_probably_tarball,
    read_head,
)

# The member names were public in the single-module version, though not in __all__:
# still importable from here (the redundant aliases mark them as re-exports).
from relocate.io.crypto.tarball import DATA_KEY_MEMBER as DATA_KEY_MEMBER
from relocate.io.crypto.tarball import EXPORT_MEMBER as EXPORT_MEMBER
from relocate.io.crypto.tarball import PUBLIC_KEY_MEMBER as PUBLIC_KEY_MEMBER

__all__ = (
    "DECRYPT_FLAGS_EXCLUSIVE",
    "DECRYPT_FLAG_REQUIRED",
    "ENCRYPTED_INPUT_WITHOUT_KEY",
    "ENCRYPT_FLAGS_EXCLUSIVE",
    "ENCRYPT_FLAG_REQUIRED",
    "KMS_CONFIG_FIELDS",
    "KMS_REQUEST_CORRUPTED",
    "KMS_RESPONSE_CORRUPTED",
    "MISSING_MEMBER",
    "NOT_A_FERNET_TOKEN",
    "PLAIN_INPUT_WITH_KEY",
    "PUBLIC_KEY_MISMATCH",
    "TOKEN_TAMPERED",
    "DecryptionError",
    "DecryptionSpec",
    "EncryptionError",
    "UsageError",
    "crc32c",
    "decrypt_to",
    "encrypt_export",
    "input_kind_error",
    "is_probably_plain_json",
    "is_probably_tarball",
    "kms_key_version_name",
    "open_plaintext",
    "parse_kms_config",
    "read_head",
    "validate_kms_config",
)
