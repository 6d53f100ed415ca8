"""Telling an encrypted tarball from a plain JSON export by its first bytes.

The importer uses this to say "pass --decrypt-with" (or the opposite) instead of failing
deep inside the JSON parser or the tar reader.
"""

from __future__ import annotations

from typing import BinaryIO

from relocate.io.crypto.errors import ENCRYPTED_INPUT_WITHOUT_KEY, PLAIN_INPUT_WITH_KEY
from relocate.io.crypto.streams import _buffered, _chain_chunks, _is_seekable

# gzip, bzip2 and xz: the compressions tarfile's "r:*" mode undoes, as Sentry's reader does.
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


_JSON_WHITESPACE = b" \t\r\n"
# What may follow an array's "[" in JSON: a value's first byte or the closing bracket.
_JSON_VALUE_START = frozenset(b'{["]-0123456789tfn')


def is_probably_plain_json(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) starts like a JSON export.

    That is an array: ``[``, then a value or ``]`` (or the end of ``head``), each after
    optional whitespace and an optional UTF-8 byte order mark. Looking past the bracket
    keeps binary junk that merely starts with the byte ``[`` from being called JSON.
    """
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip(_JSON_WHITESPACE)
    if not text.startswith(b"["):
        return False
    rest = text[1:].lstrip(_JSON_WHITESPACE)
    return not rest or rest[0] in _JSON_VALUE_START


def is_probably_tarball(head: bytes) -> bool:
    """Whether ``head`` (the first 512 bytes of a file) looks like a tar archive.

    A tar header has the magic ``ustar`` at offset 257. Sentry reads tarballs with
    transparent decompression, so gzip, bzip2 and xz magic numbers count as well.
    """
    if is_probably_plain_json(head):
        return False
    return head[257:262] == b"ustar" or head.startswith(_COMPRESSED_MAGIC)


def input_kind_error(head: bytes, *, decrypting: bool) -> str | None:
    """The error to report when the input's kind contradicts the decryption flags.

    Args:
        head: The first bytes (512 suffice) of the input file.
        decrypting: Whether ``--decrypt-with`` or ``--decrypt-with-gcp-kms`` was given.

    Returns:
        :data:`ENCRYPTED_INPUT_WITHOUT_KEY`, :data:`PLAIN_INPUT_WITH_KEY`, or ``None``
        when nothing is obviously wrong.
    """
    if decrypting and is_probably_plain_json(head):
        return PLAIN_INPUT_WITH_KEY
    if not decrypting and is_probably_tarball(head):
        return ENCRYPTED_INPUT_WITHOUT_KEY
    return None


def read_head(source: BinaryIO, size: int = 512) -> tuple[bytes, BinaryIO]:
    """Peek at the first ``size`` bytes of ``source`` without consuming them.

    Returns:
        The head, and a stream that still yields the whole input: ``source`` itself
        (rewound) when it is seekable, otherwise a reader that replays the head first.
    """
    if _is_seekable(source):
        position = source.tell()
        head = source.read(size)
        source.seek(position)
        return head, source
    parts = []
    remaining = size
    while remaining > 0:
        part = source.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    head = b"".join(parts)
    return head, _buffered(_chain_chunks(head, source))
