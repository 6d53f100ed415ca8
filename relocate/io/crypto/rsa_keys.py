"""RSA keys: loading PEM private and public keys, and wrapping the data key with OAEP.

``data.key`` is the Fernet key text encrypted with RSA-OAEP (MGF1 and hash both
SHA-256, no label), as Sentry does; ``key.pub`` is the public key as canonical
SubjectPublicKeyInfo PEM, which a decryptor compares byte for byte.
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa

from relocate.io.crypto.errors import PUBLIC_KEY_MISMATCH, DecryptionError, EncryptionError

_OAEP = asym_padding.OAEP(
    mgf=asym_padding.MGF1(algorithm=hashes.SHA256()),
    algorithm=hashes.SHA256(),
    label=None,
)


def _load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError as e:  # the PEM is encrypted; Sentry supports no passphrase either
        raise DecryptionError(
            f"The `decrypt_with` private key is passphrase-protected, which is not supported: {e}"
        ) from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise DecryptionError(f"The `decrypt_with` file is not a PEM private key: {e}") from e
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DecryptionError("The `decrypt_with` private key is not an RSA key.")
    return key


def _canonical_public_pem(key: rsa.RSAPublicKey) -> bytes:
    """The PEM that goes into ``key.pub``, and that a private key's public half must match."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _unwrap_with_private_key(
    private_key_pem: bytes, encrypted_key: bytes, public_key_pem: bytes
) -> bytes:
    """Decrypt ``data.key`` with a local private key, after Sentry's ``key.pub`` check."""
    key = _load_private_key(private_key_pem)
    if _canonical_public_pem(key.public_key()) != public_key_pem:
        raise DecryptionError(PUBLIC_KEY_MISMATCH)
    try:
        return key.decrypt(encrypted_key, _OAEP)
    except ValueError as e:
        raise DecryptionError(
            "data.key could not be decrypted with the `decrypt_with` private key "
            "(RSA-OAEP, SHA-256)"
        ) from e


def _load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise EncryptionError(f"The encryption key is not a PEM public key: {e}") from e
    if not isinstance(key, rsa.RSAPublicKey):
        raise EncryptionError("The encryption key is not an RSA public key.")
    return key


def _wrap_data_key(key: rsa.RSAPublicKey, key_text: bytes) -> bytes:
    """Encrypt the Fernet key text into the content of ``data.key``."""
    return key.encrypt(key_text, _OAEP)
