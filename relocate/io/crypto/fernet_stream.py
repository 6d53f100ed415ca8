"""Fernet tokens encrypted and decrypted as streams, in bounded memory.

``cryptography``'s ``Fernet`` wants the whole token in memory. A token is just
``version | timestamp | IV | AES-128-CBC ciphertext | HMAC-SHA256``, URL-safe base64
encoded, so it can be produced and consumed chunk by chunk instead: decryption makes
one pass to check the HMAC and a second to decrypt, and releases no plaintext from a
token that fails its check. The output is byte-compatible with ``Fernet``.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hmac import HMAC

from relocate.io.crypto.errors import (
    NOT_A_FERNET_TOKEN,
    TOKEN_TAMPERED,
    DecryptionError,
    EncryptionError,
)
from relocate.io.crypto.streams import _CHUNK

_FERNET_VERSION = 0x80
_FERNET_HEADER = 1 + 8 + 16  # version, timestamp, IV
_FERNET_MAC = 32
_AES_BLOCK = 16

# Fernet.decrypt uses base64.urlsafe_b64decode, which maps -_ to +/ and then drops
# every byte outside the standard alphabet; the stream decoder does the same.
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_KEEP = _B64_ALPHABET + b"-_="
_B64_DELETE = bytes(b for b in range(256) if b not in _B64_KEEP)
_B64_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")
_B64_STD_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _generate_key() -> bytes:
    """A fresh Fernet key text (44 ASCII bytes), as ``Fernet.generate_key()`` makes it."""
    return base64.urlsafe_b64encode(os.urandom(32))


def _fernet_keys(key_text: bytes) -> tuple[bytes, bytes]:
    """Split a Fernet key (URL-safe base64 of 32 bytes) into signing and AES keys."""
    try:
        raw = base64.urlsafe_b64decode(key_text)
    except (binascii.Error, ValueError) as e:
        raise DecryptionError("data.key did not decrypt to a Fernet key") from e
    if len(raw) != 32:
        raise DecryptionError("data.key did not decrypt to a Fernet key")
    return raw[:16], raw[16:]


def _b64decode_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decode URL-safe base64 arriving in arbitrary chunks, like ``urlsafe_b64decode``.

    Bytes outside the alphabet are dropped (as the reference decoder does); ``=`` may
    only end the text.

    Raises:
        DecryptionError: The text is not base64.
    """
    carry = b""
    padding = b""
    try:
        for chunk in chunks:
            text = chunk.translate(_B64_URLSAFE_TO_STD, _B64_DELETE)
            if padding:
                if text.strip(b"="):
                    raise DecryptionError(f"{NOT_A_FERNET_TOKEN} (data after base64 padding)")
                padding += text
                continue
            eq = text.find(b"=")
            if eq >= 0:
                padding = text[eq:]
                if padding.strip(b"="):
                    raise DecryptionError(f"{NOT_A_FERNET_TOKEN} (data after base64 padding)")
                text = text[:eq]
            if carry:
                text = carry + text
            cut = len(text) - len(text) % 4
            if cut:
                yield binascii.a2b_base64(text[:cut])
            carry = text[cut:]
        if carry or padding:
            yield binascii.a2b_base64(carry + padding)
    except binascii.Error as e:
        raise DecryptionError(f"{NOT_A_FERNET_TOKEN} (invalid base64: {e})") from e


class _MacSplitter:
    """Splits a decoded token stream into its signed part and the trailing 32-byte MAC."""

    def __init__(self) -> None:
        self.tail = b""
        self.signed_length = 0

    def feed(self, chunk: bytes) -> bytes:
        """Take the next decoded bytes; return those now known to precede the MAC."""
        both = self.tail + chunk
        signed, self.tail = both[:-_FERNET_MAC], both[-_FERNET_MAC:]
        self.signed_length += len(signed)
        return signed


def _check_token_shape(first_byte: int | None, signed_length: int, mac_length: int) -> None:
    if first_byte != _FERNET_VERSION:
        raise DecryptionError(f"{NOT_A_FERNET_TOKEN} (bad version byte)")
    body = signed_length - _FERNET_HEADER
    if mac_length != _FERNET_MAC or body < _AES_BLOCK or body % _AES_BLOCK:
        raise DecryptionError(f"{NOT_A_FERNET_TOKEN} (bad length)")


def _verify_token(token_chunks: Iterable[bytes], signing_key: bytes) -> None:
    """First pass: check the token's shape and HMAC-SHA256, producing no plaintext."""
    mac = HMAC(signing_key, hashes.SHA256())
    splitter = _MacSplitter()
    first_byte = None
    for chunk in _b64decode_chunks(token_chunks):
        signed = splitter.feed(chunk)
        if first_byte is None and signed:
            first_byte = signed[0]
        mac.update(signed)
    if first_byte is None and splitter.tail:
        first_byte = splitter.tail[0]
    _check_token_shape(first_byte, splitter.signed_length, len(splitter.tail))
    try:
        mac.verify(splitter.tail)  # constant-time comparison
    except InvalidSignature as e:
        raise DecryptionError(TOKEN_TAMPERED) from e


def _decrypt_token(
    token_chunks: Iterable[bytes], signing_key: bytes, encryption_key: bytes
) -> Iterator[bytes]:
    """Second pass: decrypt AES-128-CBC and unpad PKCS7, chunk by chunk.

    The HMAC is computed again and checked before the last block is released, so that
    a file changed between the two passes cannot complete a "successful" decryption.
    """
    mac = HMAC(signing_key, hashes.SHA256())
    splitter = _MacSplitter()
    header = b""
    decryptor = None
    unpadder = sym_padding.PKCS7(algorithms.AES.block_size).unpadder()
    for chunk in _b64decode_chunks(token_chunks):
        signed = splitter.feed(chunk)
        mac.update(signed)
        if decryptor is None:
            header += signed
            if len(header) < _FERNET_HEADER:
                continue
            iv = header[9:_FERNET_HEADER]
            decryptor = Cipher(algorithms.AES(encryption_key), modes.CBC(iv)).decryptor()
            signed, header = header[_FERNET_HEADER:], b""
        if signed:
            plain = unpadder.update(decryptor.update(signed))
            if plain:
                yield plain
    try:
        mac.verify(splitter.tail)
    except InvalidSignature as e:
        raise DecryptionError(f"{TOKEN_TAMPERED} (export.json changed while being read)") from e
    if decryptor is None:
        raise DecryptionError(f"{NOT_A_FERNET_TOKEN} (bad length)")
    try:
        last = unpadder.update(decryptor.finalize()) + unpadder.finalize()
    except ValueError as e:
        raise DecryptionError(f"{NOT_A_FERNET_TOKEN} (bad padding)") from e
    if last:
        yield last


def _fernet_token_length(plaintext_length: int) -> int:
    """The length of the base64 token text for a plaintext of this length."""
    data = _FERNET_HEADER + (plaintext_length // _AES_BLOCK + 1) * _AES_BLOCK + _FERNET_MAC
    return (data + 2) // 3 * 4


def _b64encode_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    carry = b""
    for chunk in chunks:
        data = carry + chunk if carry else chunk
        cut = len(data) - len(data) % 3
        if cut:
            yield base64.b64encode(data[:cut]).translate(_B64_STD_TO_URLSAFE)
        carry = data[cut:]
    if carry:
        yield base64.b64encode(carry).translate(_B64_STD_TO_URLSAFE)


def _fernet_encrypt_chunks(
    plaintext: BinaryIO, key_text: bytes, expected_length: int | None
) -> Iterator[bytes]:
    """The Fernet token for ``plaintext`` (read in chunks), as decoded bytes."""
    raw = base64.urlsafe_b64decode(key_text)
    signing_key, encryption_key = raw[:16], raw[16:]
    iv = os.urandom(16)
    header = bytes([_FERNET_VERSION]) + int(time.time()).to_bytes(8, "big") + iv
    mac = HMAC(signing_key, hashes.SHA256())
    mac.update(header)
    yield header
    encryptor = Cipher(algorithms.AES(encryption_key), modes.CBC(iv)).encryptor()
    padder = sym_padding.PKCS7(algorithms.AES.block_size).padder()
    total = 0
    while chunk := plaintext.read(_CHUNK):
        total += len(chunk)
        # The tar header already promised a size: a source that grows must fail now,
        # as tarfile stops reading at the promised size and would truncate silently.
        if expected_length is not None and total > expected_length:
            raise EncryptionError("the input grew while it was being encrypted")
        block = encryptor.update(padder.update(chunk))
        mac.update(block)
        yield block
    if expected_length is not None and total != expected_length:
        raise EncryptionError("the input shrank while it was being encrypted")
    block = encryptor.update(padder.finalize()) + encryptor.finalize()
    mac.update(block)
    yield block + mac.finalize()
