"""Decrypting an export tarball: how the data key is unwrapped, and the streamed plaintext.

:class:`DecryptionSpec` says which key to use (a local RSA private key or Cloud KMS)
and travels to Beam workers; :func:`open_plaintext` composes the tar reader, the key
unwrapping and the two Fernet passes into one readable stream.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from relocate.io.crypto.errors import DECRYPT_FLAGS_EXCLUSIVE, DecryptionError, UsageError
from relocate.io.crypto.fernet_stream import _decrypt_token, _fernet_keys, _verify_token
from relocate.io.crypto.kms import _kms_asymmetric_decrypt, parse_kms_config, validate_kms_config
from relocate.io.crypto.rsa_keys import _load_private_key, _unwrap_with_private_key
from relocate.io.crypto.streams import _CHUNK, _buffered, _is_seekable
from relocate.io.crypto.tarball import _member_chunks, _open_tar, _read_members


@dataclasses.dataclass(frozen=True)
class DecryptionSpec:
    """How to decrypt an encrypted tarball: picklable, so Beam can ship it to workers.

    Exactly one of ``private_key_pem`` and ``kms_config`` is set. No key object or KMS
    client is kept on the instance: they are built where the decryption runs.

    Attributes:
        private_key_pem: An unencrypted PEM RSA private key (``--decrypt-with``).
        kms_config: The five KMS fields (``--decrypt-with-gcp-kms``), validated.
        kms_endpoint: ``HOST:PORT`` of the KMS API; ``None`` for Google's.
    """

    private_key_pem: bytes | None = dataclasses.field(default=None, repr=False)
    kms_config: dict[str, str] | None = dataclasses.field(default=None, hash=False)
    kms_endpoint: str | None = None

    def __post_init__(self) -> None:
        if (self.private_key_pem is None) == (self.kms_config is None):
            raise ValueError("DecryptionSpec needs exactly one of private_key_pem and kms_config")
        if self.kms_config is not None:
            # A private copy, so that the caller mutating its dict cannot change us.
            object.__setattr__(self, "kms_config", validate_kms_config(self.kms_config))
        if self.private_key_pem is not None:
            _load_private_key(self.private_key_pem)  # fail early, before any pipeline runs

    @classmethod
    def from_flags(
        cls,
        decrypt_with: str | None,
        decrypt_with_gcp_kms: str | None,
        kms_endpoint: str | None = None,
    ) -> DecryptionSpec | None:
        """Build a spec from the ``--decrypt-with*`` flags (paths to files).

        Returns:
            ``None`` when neither flag is given (the input is plain JSON).

        Raises:
            UsageError: Both flags are given (Sentry's mutual-exclusion text).
            DecryptionError: The key or the KMS config is unusable.
            OSError: A file cannot be read.
        """
        if decrypt_with is not None and decrypt_with_gcp_kms is not None:
            raise UsageError(DECRYPT_FLAGS_EXCLUSIVE)
        if decrypt_with is not None:
            return cls(
                private_key_pem=Path(decrypt_with).read_bytes(),
                kms_endpoint=kms_endpoint,
            )
        if decrypt_with_gcp_kms is not None:
            raw = Path(decrypt_with_gcp_kms).read_bytes()
            return cls(
                kms_config=parse_kms_config(raw, DecryptionError),
                kms_endpoint=kms_endpoint,
            )
        return None

    def unwrap_data_key(self, encrypted_key: bytes, public_key_pem: bytes) -> bytes:
        """Decrypt ``data.key`` into the Fernet key text (spec 2.4)."""
        if self.private_key_pem is not None:
            return _unwrap_with_private_key(self.private_key_pem, encrypted_key, public_key_pem)
        assert self.kms_config is not None
        return _kms_asymmetric_decrypt(self.kms_config, self.kms_endpoint, encrypted_key)


@contextlib.contextmanager
def open_plaintext(source: BinaryIO, spec: DecryptionSpec) -> Iterator[BinaryIO]:
    """Decrypt an encrypted export tarball as a stream.

    Everything that can be checked is checked before the context is entered: the tar
    layout, the data key and the token's HMAC. Reading then decrypts chunk by chunk.

    Args:
        source: The tarball, read from its current position. It may be non-seekable
            (stdin, a Beam stream): it is then spooled to a temporary file first,
            which holds ciphertext only.
        spec: How to unwrap the data key.

    Yields:
        A binary file-like object whose ``read(n)`` returns the JSON export bytes.

    Raises:
        DecryptionError: For any problem with the tarball, the key or the token, on
            entry or (only if the file changes under us, or the padding is bad) while
            reading.
    """
    with contextlib.ExitStack() as stack:
        if not _is_seekable(source):
            spool = stack.enter_context(tempfile.TemporaryFile(prefix="relocate-tarball-"))
            shutil.copyfileobj(source, spool, _CHUNK)
            spool.seek(0)
            source = spool  # type: ignore[assignment]
        tar = stack.enter_context(_open_tar(source))
        members = _read_members(tar)
        signing_key, encryption_key = _fernet_keys(
            spec.unwrap_data_key(members.data_key, members.public_key_pem)
        )
        _verify_token(_member_chunks(tar, members.export), signing_key)
        plaintext = stack.enter_context(
            _buffered(
                _decrypt_token(_member_chunks(tar, members.export), signing_key, encryption_key)
            )
        )
        yield plaintext


def decrypt_to(src: BinaryIO, dest: BinaryIO, spec: DecryptionSpec) -> int:
    """Decrypt the tarball ``src`` into ``dest`` (``backup decrypt``).

    Returns:
        The number of plaintext bytes written.
    """
    written = 0
    with open_plaintext(src, spec) as plaintext:
        while chunk := plaintext.read(_CHUNK):
            dest.write(chunk)
            written += len(chunk)
    return written
