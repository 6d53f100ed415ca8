"""CRC-32C, the checksum Google's KMS and Secret Manager APIs use for integrity checks."""

from __future__ import annotations


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum Cloud KMS uses for integrity checks.

    Pure Python: it only ever runs over a data key or a PEM (under a kilobyte), and it
    spares a dependency on the ``google-crc32c`` wheel.
    """
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
