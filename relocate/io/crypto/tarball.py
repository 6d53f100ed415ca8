"""The layout of Sentry's encrypted export tarball: its three members, read and written.

An uncompressed tar (spec 2.3) holding, in this order, ``export.json`` (the Fernet
token), ``data.key`` (the wrapped data key) and ``key.pub`` (the PEM public key).
Reading walks the headers without loading ``export.json``, whose content is then
streamed; writing uses tarfile's stream mode, so the destination may be a pipe.
"""

from __future__ import annotations

import dataclasses
import io
import lzma
import tarfile
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from relocate.io.crypto.errors import MISSING_MEMBER, PLAIN_INPUT_WITH_KEY, DecryptionError
from relocate.io.crypto.sniff import is_probably_plain_json, is_probably_tarball
from relocate.io.crypto.streams import _CHUNK

EXPORT_MEMBER = "export.json"
DATA_KEY_MEMBER = "data.key"
PUBLIC_KEY_MEMBER = "key.pub"
# data.key is 256-512 bytes and key.pub under 1 KiB for RSA; anything far bigger is
# not a Sentry tarball, and reading it whole would break the memory bound.
_MAX_KEY_MEMBER_SIZE = 64 * 1024
# What tarfile and the decompressors behind "r:*" raise on a truncated or bad archive.
_TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


@dataclasses.dataclass
class _Members:
    export: tarfile.TarInfo
    data_key: bytes
    public_key_pem: bytes


def _open_tar(source: BinaryIO) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=source, mode="r:*")
    except _TAR_ERRORS as e:
        position = source.tell()
        head = source.read(512)
        source.seek(position)
        if is_probably_plain_json(head):
            raise DecryptionError(PLAIN_INPUT_WITH_KEY) from e
        if is_probably_tarball(head):
            raise DecryptionError(f"corrupt tar archive: {e}") from e
        raise DecryptionError("not a tar archive (tried uncompressed, gzip, bzip2 and xz)") from e


def _read_members(tar: tarfile.TarFile) -> _Members:
    """Walk the tar headers (seeking over data), Sentry's way: names are load-bearing."""
    export = None
    small: dict[str, bytes] = {}
    try:
        for info in tar:
            if not info.isfile():
                continue  # Sentry ignores directories and links
            if info.name == EXPORT_MEMBER:
                export = info
            elif info.name in (DATA_KEY_MEMBER, PUBLIC_KEY_MEMBER):
                if info.size > _MAX_KEY_MEMBER_SIZE:
                    raise DecryptionError(f"{info.name} is {info.size} bytes, too large for a key")
                member = tar.extractfile(info)
                assert member is not None  # regular files always extract
                small[info.name] = member.read()
            else:
                raise DecryptionError(f"Unknown tarball entity {info.name}")
        ended = _check_archive_end(tar)
    except _TAR_ERRORS as e:
        raise DecryptionError(f"truncated or corrupt tar archive: {e}") from e
    missing = [
        name
        for name, present in (
            (EXPORT_MEMBER, export is not None),
            (DATA_KEY_MEMBER, DATA_KEY_MEMBER in small),
            (PUBLIC_KEY_MEMBER, PUBLIC_KEY_MEMBER in small),
        )
        if not present
    ]
    if missing:
        hint = "" if ended else "; the archive has no end marker, it may be truncated"
        raise DecryptionError(f"{MISSING_MEMBER}: no {', '.join(missing)}{hint}")
    assert export is not None
    return _Members(export, small[DATA_KEY_MEMBER], small[PUBLIC_KEY_MEMBER])


def _check_archive_end(tar: tarfile.TarFile) -> bool:
    """After the last header: is there a proper end marker, or nothing at all?

    tarfile stops quietly at a cut or garbled header; telling those apart from a
    clean end is what lets a truncated tarball be reported as such.

    Returns:
        True for a zero block (the end marker), False for a bare end of file.
    """
    fileobj = tar.fileobj
    assert fileobj is not None
    fileobj.seek(tar.offset)
    block = fileobj.read(tarfile.BLOCKSIZE)
    if not block:
        return False
    if len(block) < tarfile.BLOCKSIZE:
        raise DecryptionError(f"truncated tar archive: a header is cut short at byte {tar.offset}")
    if block.count(0) != tarfile.BLOCKSIZE:
        raise DecryptionError(f"corrupt tar archive: invalid header at byte {tar.offset}")
    return True


def _member_chunks(tar: tarfile.TarFile, info: tarfile.TarInfo) -> Iterator[bytes]:
    member = tar.extractfile(info)
    assert member is not None
    try:
        while chunk := member.read(_CHUNK):
            yield chunk
    except _TAR_ERRORS as e:
        raise DecryptionError(f"truncated or corrupt tar archive: {info.name}: {e}") from e


def _add_member(tar: tarfile.TarFile, name: str, size: int, data: BinaryIO) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    tar.addfile(info, fileobj=data)


def _write_members(
    dest: BinaryIO, token: BinaryIO, token_length: int, wrapped_key: bytes, public_key_pem: bytes
) -> None:
    """Write the three members, in Sentry's order, as a tar stream to ``dest``.

    ``token`` must yield exactly ``token_length`` bytes: the tar header comes first.
    """
    # Stream mode ("w|") never seeks or tells, so dest may be a pipe.
    with tarfile.open(fileobj=dest, mode="w|") as tar:
        _add_member(tar, EXPORT_MEMBER, token_length, token)
        _add_member(tar, DATA_KEY_MEMBER, len(wrapped_key), io.BytesIO(wrapped_key))
        _add_member(tar, PUBLIC_KEY_MEMBER, len(public_key_pem), io.BytesIO(public_key_pem))
