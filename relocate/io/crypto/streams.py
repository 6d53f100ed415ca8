"""Byte streams for bounded memory: chunk iterators as file objects, seekability probes.

Every part of the tarball code reads ``_CHUNK`` bytes at a time and hands chunk
iterators to the next stage; these helpers turn such iterators back into the file
objects callers expect.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, BinaryIO

# Token text is read 1 MiB at a time (a multiple of 4, so base64 quads rarely straddle
# two reads); memory use is a small multiple of this, whatever the export size.
_CHUNK = 1 << 20


class _ChunkReader(io.RawIOBase):
    """A raw binary stream over an iterator of ``bytes`` chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


def _buffered(chunks: Iterator[bytes]) -> BinaryIO:
    return io.BufferedReader(_ChunkReader(chunks), buffer_size=64 * 1024)  # type: ignore[return-value]


def _chain_chunks(head: bytes, rest: BinaryIO) -> Iterator[bytes]:
    if head:
        yield head
    while chunk := rest.read(_CHUNK):
        yield chunk


def _is_seekable(stream: BinaryIO) -> bool:
    try:
        seekable: Any = stream.seekable
        # A method on io streams, a plain attribute on Beam's CompressedFile.
        if callable(seekable):
            seekable = seekable()
        if not seekable:
            return False
        stream.tell()
    except (AttributeError, OSError, TypeError, ValueError):
        return False
    return True
