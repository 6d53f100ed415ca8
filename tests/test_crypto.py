"""Tests for relocate.io.crypto, relocate.cli.backup and the local KMS server.

Everything is real: RSA keys generated for the session, cryptography's own Fernet as
the reference implementation of Sentry's algorithm, and google-cloud-kms's client
talking gRPC to relocate.testing.kms_server on 127.0.0.1. No network, no mocks.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import pickle
import random
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from relocate.cli import backup as backup_cli
from relocate.io.crypto import (
    DECRYPT_FLAG_REQUIRED,
    DECRYPT_FLAGS_EXCLUSIVE,
    ENCRYPT_FLAG_REQUIRED,
    ENCRYPT_FLAGS_EXCLUSIVE,
    ENCRYPTED_INPUT_WITHOUT_KEY,
    KMS_CONFIG_FIELDS,
    KMS_RESPONSE_CORRUPTED,
    MISSING_MEMBER,
    PLAIN_INPUT_WITH_KEY,
    PUBLIC_KEY_MISMATCH,
    DecryptionError,
    DecryptionSpec,
    EncryptionError,
    UsageError,
    crc32c,
    decrypt_to,
    decryption,
    encrypt_export,
    fernet_stream,
    input_kind_error,
    is_probably_plain_json,
    is_probably_tarball,
    open_plaintext,
    read_head,
)
from relocate.testing.kms_server import LocalKmsServer

REPO_ROOT = Path(__file__).resolve().parents[1]
OAEP = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)
EXPORT = json.dumps(
    [
        {"model": "sentry.user", "pk": 1, "fields": {"username": "admin", "is_staff": True}},
        {"model": "sentry.email", "pk": 1, "fields": {"email": "admin@example.com"}},
    ]
).encode()


# --- Fixtures and helpers ----------------------------------------------------------------


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def spec(rsa_key: rsa.RSAPrivateKey) -> DecryptionSpec:
    return DecryptionSpec(private_key_pem=_private_pem(rsa_key))


@pytest.fixture(scope="session")
def kms_server() -> Iterator[LocalKmsServer]:
    with LocalKmsServer() as server:
        yield server


@pytest.fixture
def kms(kms_server: LocalKmsServer) -> Iterator[LocalKmsServer]:
    kms_server.corrupt_response_checksum = False
    yield kms_server
    kms_server.corrupt_response_checksum = False


@pytest.fixture(scope="session")
def key_files(
    tmp_path_factory: pytest.TempPathFactory,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keys")
    files = {
        "private": (root / "private.pem", _private_pem(rsa_key)),
        "public": (root / "public.pem", _public_pem(rsa_key)),
        "other_private": (root / "other.pem", _private_pem(other_rsa_key)),
    }
    for path, content in files.values():
        path.write_bytes(content)
    return {name: path for name, (path, _) in files.items()}


def encrypt(data: bytes, **kwargs: object) -> bytes:
    out = io.BytesIO()
    encrypt_export(io.BytesIO(data), out, **kwargs)  # type: ignore[arg-type]
    return out.getvalue()


def decrypt(tarball: bytes, spec: DecryptionSpec) -> bytes:
    with open_plaintext(io.BytesIO(tarball), spec) as plaintext:
        return plaintext.read()


def make_tar(members: list[tuple[str, bytes]], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def tar_members(tarball: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]


def reference_encrypt(data: bytes, public_key_pem: bytes) -> bytes:
    """Sentry's create_encrypted_export_tarball, reduced to its algorithm."""
    key_text = Fernet.generate_key()
    public_key = serialization.load_pem_public_key(public_key_pem)
    assert isinstance(public_key, rsa.RSAPublicKey)
    return make_tar(
        [
            ("export.json", Fernet(key_text).encrypt(data)),
            ("data.key", public_key.encrypt(key_text, OAEP)),
            ("key.pub", public_key_pem),
        ]
    )


def reference_decrypt(tarball: bytes, private_key: rsa.RSAPrivateKey) -> bytes:
    """Sentry's decrypt_encrypted_tarball (local key), reduced to its algorithm."""
    members = tar_members(tarball)
    assert members["key.pub"] == _public_pem(private_key)
    key_text = private_key.decrypt(members["data.key"], OAEP)
    return Fernet(key_text).decrypt(members["export.json"].decode("utf-8"))


class NonSeekable(io.RawIOBase):
    """A pipe-like stream: readable or writable, never seekable."""

    def __init__(self, data: bytes = b"") -> None:
        super().__init__()
        self._source = io.BytesIO(data)
        self.written = bytearray()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._source.read(min(len(buffer), 7777))  # odd sizes on purpose
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.written += data
        return len(data)


def export_of_size(size: int) -> bytes:
    rng = random.Random(size)
    return bytes(rng.getrandbits(8) for _ in range(size))


# --- CRC32C and sniffing -------------------------------------------------------------------


def test_crc32c_matches_known_vectors() -> None:
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"\x00" * 32) == 0x8A9136AA  # RFC 3720, B.4


def test_is_probably_tarball_and_plain_json(rsa_key: rsa.RSAPrivateKey) -> None:
    tarball = encrypt(EXPORT, public_key_pem=_public_pem(rsa_key))
    assert is_probably_tarball(tarball[:512])
    assert is_probably_tarball(gzip.compress(tarball)[:512])
    assert not is_probably_plain_json(tarball[:512])
    for plain in (EXPORT, b"  \n\t[]", b"\xef\xbb\xbf[\n]", b"[", b'[ "x"]'):
        assert is_probably_plain_json(plain[:512])
        assert not is_probably_tarball(plain[:512])
    # JSON that happens to have "ustar" at offset 257 is still JSON.
    tricky = b"[" + b" " * 255 + b'"ustar"]'
    assert tricky[257:262] == b"ustar"
    assert not is_probably_tarball(tricky)
    # Binary junk that merely starts with the byte "[" is not JSON.
    for junk in (b"[\xc9\xa2y,\xdd", b"[ \x00\x01", b"[x"):
        assert not is_probably_plain_json(junk)


def test_input_kind_errors(rsa_key: rsa.RSAPrivateKey) -> None:
    head = encrypt(EXPORT, public_key_pem=_public_pem(rsa_key))[:512]
    # An encrypted file given without a key, and a plain file given with one.
    assert input_kind_error(head, decrypting=False) == ENCRYPTED_INPUT_WITHOUT_KEY
    assert input_kind_error(EXPORT[:512], decrypting=True) == PLAIN_INPUT_WITH_KEY
    assert input_kind_error(head, decrypting=True) is None
    assert input_kind_error(EXPORT[:512], decrypting=False) is None
    assert "--decrypt-with" in ENCRYPTED_INPUT_WITHOUT_KEY
    assert "--decrypt-with-gcp-kms" in ENCRYPTED_INPUT_WITHOUT_KEY


def test_plain_file_given_with_a_key_is_reported(spec: DecryptionSpec) -> None:
    with pytest.raises(DecryptionError, match=PLAIN_INPUT_WITH_KEY):
        decrypt(EXPORT, spec)


def test_read_head_keeps_the_stream_whole() -> None:
    data = EXPORT * 100
    seekable = io.BytesIO(data)
    head, stream = read_head(seekable, 10)
    assert head == data[:10]
    assert stream is seekable
    assert stream.read() == data
    head, stream = read_head(NonSeekable(data), 600)  # type: ignore[arg-type]
    assert head == data[:600]
    assert stream.read(5) == data[:5]
    assert stream.read() == data[5:]


# --- Round trips and compatibility ----------------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, 15, 16, 17, 1000, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 7]
)
def test_round_trip_with_local_key(
    size: int, rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec
) -> None:
    data = export_of_size(size)
    tarball = encrypt(data, public_key_pem=_public_pem(rsa_key))
    assert decrypt(tarball, spec) == data
    assert reference_decrypt(tarball, rsa_key) == data


def test_tarball_layout_matches_sentry(rsa_key: rsa.RSAPrivateKey) -> None:
    tarball = encrypt(EXPORT, public_key_pem=_public_pem(rsa_key))
    assert tarball[257:262] == b"ustar"  # uncompressed
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["export.json", "data.key", "key.pub"]
        assert all(m.isfile() for m in members)
        contents = {m.name: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    assert len(contents["data.key"]) == 256
    assert contents["key.pub"] == _public_pem(rsa_key)
    # The token is plain URL-safe base64 with a 0x80 version byte.
    token = contents["export.json"]
    assert base64.urlsafe_b64decode(token)[0] == 0x80
    assert len(token) == fernet_stream._fernet_token_length(len(EXPORT))
    assert len(rsa_key.decrypt(contents["data.key"], OAEP)) == 44


def test_key_pub_is_canonical_whatever_pem_was_given(
    rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec
) -> None:
    pkcs1 = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    crlf = _public_pem(rsa_key).replace(b"\n", b"\r\n")
    for pem in (pkcs1, crlf):
        tarball = encrypt(EXPORT, public_key_pem=pem)
        assert tar_members(tarball)["key.pub"] == _public_pem(rsa_key)
        assert decrypt(tarball, spec) == EXPORT


def test_reference_tarball_decrypts(rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec) -> None:
    for data in (b"", EXPORT, export_of_size(300_000)):
        assert decrypt(reference_encrypt(data, _public_pem(rsa_key)), spec) == data


def test_reference_gzip_tarball_decrypts(rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec) -> None:
    # Sentry opens tarballs with tarfile mode "r", which decompresses transparently.
    members = tar_members(reference_encrypt(EXPORT, _public_pem(rsa_key)))
    tarball = make_tar(list(members.items()), mode="w:gz")
    assert decrypt(tarball, spec) == EXPORT


def test_token_with_line_breaks_decrypts_like_fernet(
    rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec
) -> None:
    members = tar_members(reference_encrypt(EXPORT, _public_pem(rsa_key)))
    wrapped = ("\n".join(textwrap.wrap(members["export.json"].decode(), 76)) + "\n").encode()
    key_text = rsa_key.decrypt(members["data.key"], OAEP)
    assert Fernet(key_text).decrypt(wrapped) == EXPORT  # the reference tolerates it
    members["export.json"] = wrapped
    assert decrypt(make_tar(list(members.items())), spec) == EXPORT


def test_base64_stream_decoder_matches_reference_on_any_chunking() -> None:
    rng = random.Random(7)
    for length in (0, 1, 2, 3, 4, 5, 57, 1000):
        encoded = base64.urlsafe_b64encode(rng.randbytes(length))
        for _ in range(20):
            cuts = sorted(rng.sample(range(len(encoded) + 1), min(3, len(encoded) + 1)))
            pieces = [encoded[a:b] for a, b in zip([0, *cuts], [*cuts, len(encoded)], strict=True)]
            decoded = b"".join(fernet_stream._b64decode_chunks(pieces))
            assert decoded == base64.urlsafe_b64decode(encoded)


def test_read_is_a_stream(rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec) -> None:
    data = b"\n".join(b'{"line": %d}' % i for i in range(50_000))
    tarball = encrypt(data, public_key_pem=_public_pem(rsa_key))
    with open_plaintext(io.BytesIO(tarball), spec) as plaintext:
        assert plaintext.read(3) == data[:3]
        assert plaintext.readline() == data[3:].split(b"\n", 1)[0] + b"\n"
        rest = bytearray()
        while chunk := plaintext.read(4096):
            assert len(chunk) <= 4096
            rest += chunk
    assert data.endswith(bytes(rest))


def test_source_is_read_from_its_current_position(
    rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec
) -> None:
    tarball = encrypt(EXPORT, public_key_pem=_public_pem(rsa_key))
    source = io.BytesIO(b"junk" + tarball)
    source.seek(4)
    with open_plaintext(source, spec) as plaintext:
        assert plaintext.read() == EXPORT


def test_non_seekable_source_spools_only_ciphertext(
    rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b'[{"secret": "' + b"s3cr3t-marker" * 1000 + b'"}]'
    tarball = encrypt(data, public_key_pem=_public_pem(rsa_key))
    spools: list[BinaryIO] = []
    real_temporary_file = decryption.tempfile.TemporaryFile

    def recording_temporary_file(*args: object, **kwargs: object) -> BinaryIO:
        spool = real_temporary_file(*args, **kwargs)  # type: ignore[call-overload]
        spools.append(spool)
        return spool

    monkeypatch.setattr(decryption.tempfile, "TemporaryFile", recording_temporary_file)
    with open_plaintext(NonSeekable(tarball), spec) as plaintext:  # type: ignore[arg-type]
        assert plaintext.read() == data
        assert len(spools) == 1
        spools[0].seek(0)
        spooled = spools[0].read()
    assert spooled == tarball
    assert b"s3cr3t-marker" not in spooled


def test_encrypt_streams_to_a_pipe_from_a_pipe(
    rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec
) -> None:
    data = export_of_size(2 * (1 << 20) + 3)
    for source in (NonSeekable(data), io.BytesIO(data)):
        dest = NonSeekable()
        encrypt_export(source, dest, public_key_pem=_public_pem(rsa_key))  # type: ignore[arg-type]
        assert decrypt(bytes(dest.written), spec) == data
        assert reference_decrypt(bytes(dest.written), rsa_key) == data


@pytest.mark.parametrize("name", ["export.tar", "export.tar.gz"])
def test_beam_filesystems_streams(
    name: str, tmp_path: Path, rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec
) -> None:
    filesystems = pytest.importorskip("apache_beam.io.filesystems").FileSystems
    data = export_of_size(300_000)
    plain, path = str(tmp_path / f"plain-{name}"), str(tmp_path / name)
    # A .gz path makes Beam (de)compress on the fly: its CompressedFile is what we get.
    with filesystems.create(plain) as dest:
        dest.write(data)
    with filesystems.open(plain) as source, filesystems.create(path) as dest:
        encrypt_export(source, dest, public_key_pem=_public_pem(rsa_key))
    with filesystems.open(path) as source, open_plaintext(source, spec) as plaintext:
        assert plaintext.read() == data


def test_encrypt_detects_a_size_that_lies(rsa_key: rsa.RSAPrivateKey) -> None:
    for size in (len(EXPORT) - 1, len(EXPORT) + 1):
        with pytest.raises(EncryptionError, match="while it was being encrypted"):
            encrypt(EXPORT, public_key_pem=_public_pem(rsa_key), size=size)


def test_decrypt_to(rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec) -> None:
    tarball = encrypt(EXPORT, public_key_pem=_public_pem(rsa_key))
    dest = io.BytesIO()
    assert decrypt_to(io.BytesIO(tarball), dest, spec) == len(EXPORT)
    assert dest.getvalue() == EXPORT


# --- Bad keys and bad tokens -------------------------------------------------------------


def test_wrong_private_key(rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey) -> None:
    tarball = encrypt(EXPORT, public_key_pem=_public_pem(rsa_key))
    wrong = DecryptionSpec(private_key_pem=_private_pem(other_rsa_key))
    with pytest.raises(DecryptionError) as info:
        decrypt(tarball, wrong)
    assert str(info.value) == PUBLIC_KEY_MISMATCH


def test_wrong_private_key_with_forged_key_pub(
    rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    members = tar_members(encrypt(EXPORT, public_key_pem=_public_pem(rsa_key)))
    members["key.pub"] = _public_pem(other_rsa_key)
    wrong = DecryptionSpec(private_key_pem=_private_pem(other_rsa_key))
    with pytest.raises(DecryptionError, match="data.key could not be decrypted"):
        decrypt(make_tar(list(members.items())), wrong)


def test_data_key_that_is_not_a_fernet_key(
    rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec
) -> None:
    members = tar_members(encrypt(EXPORT, public_key_pem=_public_pem(rsa_key)))
    members["data.key"] = rsa_key.public_key().encrypt(b"too short", OAEP)
    with pytest.raises(DecryptionError, match="did not decrypt to a Fernet key"):
        decrypt(make_tar(list(members.items())), spec)


def _retokened(tarball: bytes, token: bytes) -> bytes:
    members = tar_members(tarball)
    members["export.json"] = token
    return make_tar(list(members.items()))


@pytest.mark.parametrize("where", ["first", "middle", "last-block", "mac"])
def test_tampered_token_yields_no_plaintext(
    where: str, rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec
) -> None:
    tarball = encrypt(EXPORT * 50, public_key_pem=_public_pem(rsa_key))
    raw = bytearray(base64.urlsafe_b64decode(tar_members(tarball)["export.json"]))
    index = {"first": 1, "middle": len(raw) // 2, "last-block": len(raw) - 40, "mac": -1}
    raw[index[where]] ^= 0x01
    forged = _retokened(tarball, base64.urlsafe_b64encode(bytes(raw)))
    key_text = rsa_key.decrypt(tar_members(tarball)["data.key"], OAEP)
    with pytest.raises(InvalidToken):  # the reference agrees
        Fernet(key_text).decrypt(tar_members(forged)["export.json"])
    entered = False
    with (
        pytest.raises(DecryptionError, match="integrity check"),
        open_plaintext(io.BytesIO(forged), spec),
    ):
        entered = True
    assert not entered  # the HMAC is checked before any plaintext exists


@pytest.mark.parametrize(
    "token",
    [
        b"",
        b"hello, world",
        b"!!!!",
        b"QQ",  # bad padding
        base64.urlsafe_b64encode(b"\x81" + bytes(88)),  # wrong version byte
        base64.urlsafe_b64encode(b"\x80" + bytes(8)),  # too short
        base64.urlsafe_b64encode(b"\x80" + bytes(24 + 20 + 32)),  # not whole AES blocks
        EXPORT,
    ],
)
def test_not_a_fernet_token(token: bytes, rsa_key: rsa.RSAPrivateKey, spec: DecryptionSpec) -> None:
    tarball = _retokened(encrypt(EXPORT, public_key_pem=_public_pem(rsa_key)), token)
    with pytest.raises(DecryptionError, match="not a Fernet token|integrity check"):
        decrypt(tarball, spec)


# --- Bad tarballs ----------------------------------------------------------------------


@pytest.fixture
def good_tarball(rsa_key: rsa.RSAPrivateKey) -> bytes:
    return encrypt(EXPORT * 20, public_key_pem=_public_pem(rsa_key))


def _member_offsets(tarball: bytes) -> dict[str, tuple[int, int, int]]:
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        return {m.name: (m.offset, m.offset_data, m.size) for m in tar}


@pytest.mark.parametrize(
    "cut",
    ["inside export.json", "inside data.key header", "inside key.pub data", "at 100 bytes"],
)
def test_truncated_tar(cut: str, good_tarball: bytes, spec: DecryptionSpec) -> None:
    offsets = _member_offsets(good_tarball)
    position = {
        "inside export.json": offsets["export.json"][1] + 100,
        "inside data.key header": offsets["data.key"][0] + 200,
        "inside key.pub data": offsets["key.pub"][1] + 10,
        "at 100 bytes": 100,
    }[cut]
    with pytest.raises(DecryptionError, match="truncated|corrupt|not a tar") as info:
        decrypt(good_tarball[:position], spec)
    if cut != "at 100 bytes":
        assert "truncated" in str(info.value)


def test_tar_without_end_marker_still_decrypts(good_tarball: bytes, spec: DecryptionSpec) -> None:
    # Sentry's tarfile accepts it too; the HMAC vouches for the content.
    _, data, size = _member_offsets(good_tarball)["key.pub"]
    end = data + -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    assert decrypt(good_tarball[:end], spec) == EXPORT * 20


def test_tar_with_an_unknown_member(good_tarball: bytes, spec: DecryptionSpec) -> None:
    members = list(tar_members(good_tarball).items()) + [("evil.txt", b"boo")]
    with pytest.raises(DecryptionError) as info:
        decrypt(make_tar(members), spec)
    assert str(info.value) == "Unknown tarball entity evil.txt"


@pytest.mark.parametrize("missing", ["export.json", "data.key", "key.pub"])
def test_tar_missing_a_member(missing: str, good_tarball: bytes, spec: DecryptionSpec) -> None:
    members = [(n, c) for n, c in tar_members(good_tarball).items() if n != missing]
    with pytest.raises(DecryptionError, match=MISSING_MEMBER) as info:
        decrypt(make_tar(members), spec)
    assert missing in str(info.value)


def test_tar_directories_are_ignored(good_tarball: bytes, spec: DecryptionSpec) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        directory = tarfile.TarInfo("keys")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
        for name, content in tar_members(good_tarball).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    assert decrypt(buffer.getvalue(), spec) == EXPORT * 20


def test_tar_with_an_oversized_key_member(good_tarball: bytes, spec: DecryptionSpec) -> None:
    members = tar_members(good_tarball)
    members["key.pub"] = b"x" * 100_000
    with pytest.raises(DecryptionError, match="too large"):
        decrypt(make_tar(list(members.items())), spec)


# The random junk starts with "[" (JSON's first byte) as os.urandom did once in CI; fixed
# bytes keep the case the same on every run.
@pytest.mark.parametrize(
    "junk",
    [b"", b"[" + random.Random(14).randbytes(3000), b"PK\x03\x04" + bytes(600)],
)
def test_not_a_tar(junk: bytes, spec: DecryptionSpec) -> None:
    with pytest.raises(DecryptionError, match="not a tar archive"):
        decrypt(junk, spec)


def test_empty_tar(spec: DecryptionSpec) -> None:
    # Zero blocks are a valid, empty archive: the members are what is missing.
    with pytest.raises(DecryptionError, match=MISSING_MEMBER):
        decrypt(b"\x00" * 2000, spec)
    with pytest.raises(DecryptionError, match=MISSING_MEMBER):
        decrypt(make_tar([]), spec)


# --- DecryptionSpec and KMS configs --------------------------------------------------------


KMS_CONFIG = {
    "project_id": "p",
    "location": "global",
    "key_ring": "relocation",
    "key": "relocation",
    "version": "1",
}


@pytest.mark.parametrize(
    "config",
    [
        {k: v for k, v in KMS_CONFIG.items() if k != "key_ring"},  # missing
        {**KMS_CONFIG, "extra": "x"},  # extra
        {**KMS_CONFIG, "version": 1},  # not a string
        {**KMS_CONFIG, "project_id": None},
        [KMS_CONFIG],  # not an object
        {"project-id": "p", "location": "l", "keyring": "k", "key": "k", "version": "1"},
    ],
)
def test_kms_config_with_wrong_fields(config: object, tmp_path: Path) -> None:
    path = tmp_path / "kms.json"
    path.write_text(json.dumps(config))
    with pytest.raises(DecryptionError) as info:
        DecryptionSpec.from_flags(None, str(path))
    assert str(info.value) == KMS_CONFIG_FIELDS
    with pytest.raises(EncryptionError) as enc_info:
        encrypt(EXPORT, kms_config=config)  # type: ignore[arg-type]
    assert str(enc_info.value) == KMS_CONFIG_FIELDS


def test_kms_config_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "kms.json"
    path.write_bytes(b"{project_id: p")
    with pytest.raises(DecryptionError, match="not valid JSON") as info:
        DecryptionSpec.from_flags(None, str(path))
    assert KMS_CONFIG_FIELDS in str(info.value)


def test_from_flags(key_files: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "kms.json"
    config.write_text(json.dumps(KMS_CONFIG))
    assert DecryptionSpec.from_flags(None, None) is None
    with pytest.raises(ValueError) as info:
        DecryptionSpec.from_flags(str(key_files["private"]), str(config))
    assert isinstance(info.value, UsageError)
    assert str(info.value) == DECRYPT_FLAGS_EXCLUSIVE
    local = DecryptionSpec.from_flags(str(key_files["private"]), None)
    assert local is not None and local.private_key_pem == key_files["private"].read_bytes()
    remote = DecryptionSpec.from_flags(None, str(config), "127.0.0.1:1")
    assert remote == DecryptionSpec(kms_config=KMS_CONFIG, kms_endpoint="127.0.0.1:1")


def test_from_flags_rejects_unusable_private_keys(
    rsa_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    locked = tmp_path / "locked.pem"
    locked.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(DecryptionError, match="passphrase"):
        DecryptionSpec.from_flags(str(locked), None)
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a key")
    with pytest.raises(DecryptionError, match="not a PEM private key"):
        DecryptionSpec.from_flags(str(garbage), None)
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(DecryptionError, match="not an RSA key"):
        DecryptionSpec.from_flags(str(ec_key), None)


def test_spec_needs_exactly_one_key_source(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        DecryptionSpec()
    with pytest.raises(ValueError, match="exactly one"):
        DecryptionSpec(private_key_pem=_private_pem(rsa_key), kms_config=KMS_CONFIG)


def test_spec_is_picklable_hashable_and_keeps_the_key_out_of_repr(
    spec: DecryptionSpec, rsa_key: rsa.RSAPrivateKey
) -> None:
    assert pickle.loads(pickle.dumps(spec)) == spec
    remote = DecryptionSpec(kms_config=dict(KMS_CONFIG), kms_endpoint="127.0.0.1:1")
    assert pickle.loads(pickle.dumps(remote)) == remote
    assert len({spec, remote}) == 2
    assert "PRIVATE KEY" not in repr(spec)
    tarball = encrypt(EXPORT, public_key_pem=_public_pem(rsa_key))
    assert decrypt(tarball, pickle.loads(pickle.dumps(spec))) == EXPORT


# --- Encryption arguments ------------------------------------------------------------------


def test_encrypt_export_needs_exactly_one_key(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(UsageError) as info:
        encrypt(EXPORT)
    assert str(info.value) == ENCRYPT_FLAG_REQUIRED
    with pytest.raises(UsageError) as info:
        encrypt(EXPORT, public_key_pem=_public_pem(rsa_key), kms_config=KMS_CONFIG)
    assert str(info.value) == ENCRYPT_FLAGS_EXCLUSIVE


def test_encrypt_export_rejects_unusable_public_keys() -> None:
    with pytest.raises(EncryptionError, match="not a PEM public key"):
        encrypt(EXPORT, public_key_pem=b"nope")
    ec_public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(EncryptionError, match="not an RSA public key"):
        encrypt(EXPORT, public_key_pem=ec_public)


# --- KMS ------------------------------------------------------------------------------


def test_kms_server_speaks_to_the_real_client(kms: LocalKmsServer) -> None:
    import grpc
    from google.api_core.exceptions import MethodNotImplemented
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import kms as google_kms
    from google.cloud.kms_v1.services.key_management_service.transports.grpc import (
        KeyManagementServiceGrpcTransport,
    )

    transport = KeyManagementServiceGrpcTransport(
        credentials=AnonymousCredentials(), channel=grpc.insecure_channel(kms.endpoint)
    )
    with google_kms.KeyManagementServiceClient(transport=transport) as client:
        response = client.get_public_key(request={"name": kms.key_version_name})
        assert response.pem.encode() == kms.public_key_pem
        assert response.pem_crc32c == crc32c(kms.public_key_pem)
        assert response.name == kms.key_version_name
        assert response.algorithm.name == "RSA_DECRYPT_OAEP_2048_SHA256"
        ciphertext = kms.private_key.public_key().encrypt(b"key text", OAEP)
        decrypted = client.asymmetric_decrypt(
            request={"name": kms.key_version_name, "ciphertext": ciphertext}
        )
        assert decrypted.plaintext == b"key text"
        assert decrypted.plaintext_crc32c == crc32c(b"key text")
        assert not decrypted.verified_ciphertext_crc32c  # no checksum was sent
        with pytest.raises(MethodNotImplemented):
            client.list_key_rings(request={"parent": "projects/p/locations/global"})


def test_kms_round_trip(kms: LocalKmsServer) -> None:
    data = export_of_size(100_000)
    tarball = encrypt(data, kms_config=kms.config, kms_endpoint=kms.endpoint)
    members = tar_members(tarball)
    assert members["key.pub"] == kms.public_key_pem
    kms_spec = DecryptionSpec(kms_config=kms.config, kms_endpoint=kms.endpoint)
    assert decrypt(tarball, pickle.loads(pickle.dumps(kms_spec))) == data
    method, request = kms.requests[-1]
    assert method == "AsymmetricDecrypt"
    assert request.name == kms.key_version_name
    assert request.ciphertext == members["data.key"]
    assert request.ciphertext_crc32c == crc32c(members["data.key"])
    # The same tarball opens with the private key itself, as Sentry's would.
    local = DecryptionSpec(private_key_pem=_private_pem(kms.private_key))
    assert decrypt(tarball, local) == data
    assert reference_decrypt(tarball, kms.private_key) == data


def test_kms_decrypts_a_locally_encrypted_tarball(kms: LocalKmsServer) -> None:
    tarball = reference_encrypt(EXPORT, kms.public_key_pem)
    kms_spec = DecryptionSpec(kms_config=kms.config, kms_endpoint=kms.endpoint)
    assert decrypt(tarball, kms_spec) == EXPORT


def test_kms_response_with_a_bad_checksum(kms: LocalKmsServer) -> None:
    tarball = encrypt(EXPORT, kms_config=kms.config, kms_endpoint=kms.endpoint)
    kms.corrupt_response_checksum = True
    kms_spec = DecryptionSpec(kms_config=kms.config, kms_endpoint=kms.endpoint)
    with pytest.raises(DecryptionError) as info:
        decrypt(tarball, kms_spec)
    assert str(info.value) == KMS_RESPONSE_CORRUPTED
    with pytest.raises(EncryptionError) as enc_info:
        encrypt(EXPORT, kms_config=kms.config, kms_endpoint=kms.endpoint)
    assert str(enc_info.value) == KMS_RESPONSE_CORRUPTED


def test_kms_unknown_key_version(kms: LocalKmsServer) -> None:
    tarball = encrypt(EXPORT, kms_config=kms.config, kms_endpoint=kms.endpoint)
    wrong = {**kms.config, "version": "2"}
    with pytest.raises(DecryptionError, match="not found"):
        decrypt(tarball, DecryptionSpec(kms_config=wrong, kms_endpoint=kms.endpoint))
    with pytest.raises(EncryptionError, match="not found"):
        encrypt(EXPORT, kms_config=wrong, kms_endpoint=kms.endpoint)


def test_kms_with_a_foreign_key(kms: LocalKmsServer, rsa_key: rsa.RSAPrivateKey) -> None:
    tarball = encrypt(EXPORT, public_key_pem=_public_pem(rsa_key))
    kms_spec = DecryptionSpec(kms_config=kms.config, kms_endpoint=kms.endpoint)
    with pytest.raises(DecryptionError, match="Decryption failed"):
        decrypt(tarball, kms_spec)


def test_loopback_detection() -> None:
    from relocate.io.google_clients import is_loopback

    assert is_loopback("127.0.0.1:8080")
    assert is_loopback("localhost:1")
    assert is_loopback("[::1]:443")
    assert not is_loopback("cloudkms.googleapis.com:443")
    assert not is_loopback("10.0.0.1:443")


# --- Bounded memory ------------------------------------------------------------------


MEMORY_PROBE = r"""
import hashlib, json, resource, sys, time, tracemalloc
from relocate.io.crypto import DecryptionSpec, encrypt_export, open_plaintext

mode, tarball, key, plain = sys.argv[1:5]

def max_rss() -> int:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent
    # (here pytest, which is much bigger), so it would hide this process's own peak.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

def decrypt_once(spec):
    digest = hashlib.sha256()
    with open(tarball, "rb") as source, open_plaintext(source, spec) as plaintext:
        while chunk := plaintext.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()

with open(key, "rb") as f:
    key_pem = f.read()
if mode == "encrypt":
    before, start = max_rss(), time.perf_counter()
    with open(plain, "rb") as source, open(tarball, "wb") as dest:
        encrypt_export(source, dest, public_key_pem=key_pem)
    result = {"seconds": time.perf_counter() - start, "rss_growth": max_rss() - before}
else:
    spec = DecryptionSpec(private_key_pem=key_pem)
    before, start = max_rss(), time.perf_counter()
    sha = decrypt_once(spec)
    seconds, rss_growth = time.perf_counter() - start, max_rss() - before
    tracemalloc.start()
    decrypt_once(spec)
    peak = tracemalloc.get_traced_memory()[1]
    result = {"seconds": seconds, "rss_growth": rss_growth, "sha256": sha, "traced_peak": peak}
print(json.dumps(result))
"""


def _probe(*args: str) -> dict[str, float | str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, *args],
        capture_output=True,
        check=True,
        env=env,
        timeout=120,
    )
    return json.loads(done.stdout)


@pytest.mark.slow
def test_50_mb_export_in_bounded_memory(tmp_path: Path, key_files: dict[str, Path]) -> None:
    plain = tmp_path / "export.json"
    row = (
        '{"model":"sentry.user","pk":%d,'
        '"fields":{"username":"user-%d","email":"u%d@example.com","name":"%s"}}'
    )
    with plain.open("wb") as out:
        out.write(b"[")
        pk = 0
        while out.tell() < 50 * 1024 * 1024:
            chunk = (
                ",".join(row % (i, i, i, "x" * (i % 97)) for i in range(pk, pk + 5000)).encode()
                + b","
            )
            pk += 5000
            out.write(chunk)
        out.write(b"{}]")
    with plain.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256")
    size = plain.stat().st_size
    tarball = tmp_path / "export.tar"

    encrypted = _probe("encrypt", str(tarball), str(key_files["public"]), str(plain))
    decrypted = _probe("decrypt", str(tarball), str(key_files["private"]), str(plain))
    print(f"\nplaintext {size / 2**20:.1f} MiB; encrypt {encrypted}; decrypt {decrypted}")

    assert decrypted["sha256"] == digest.hexdigest()
    assert tarball.stat().st_size > size
    # Memory must not follow the export's size: a few 1 MiB chunks at most.
    assert decrypted["traced_peak"] < 16 * 2**20
    assert decrypted["rss_growth"] < 32 * 2**20
    assert encrypted["rss_growth"] < 32 * 2**20


# --- backup encrypt / backup decrypt ----------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="relocate")
    commands = parser.add_subparsers(dest="command", required=True)
    backup_cli.register(commands)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def export_file(tmp_path: Path) -> Path:
    path = tmp_path / "export.json"
    path.write_bytes(EXPORT)
    return path


def test_cli_round_trip_with_local_keys(
    tmp_path: Path, export_file: Path, key_files: dict[str, Path], rsa_key: rsa.RSAPrivateKey
) -> None:
    tarball, decrypted = tmp_path / "out.tar", tmp_path / "out.json"
    assert (
        run_cli(
            "backup",
            "encrypt",
            str(tarball),
            "--src",
            str(export_file),
            "--encrypt-with",
            str(key_files["public"]),
        )
        == 0
    )
    assert reference_decrypt(tarball.read_bytes(), rsa_key) == EXPORT
    assert (
        run_cli(
            "backup",
            "decrypt",
            str(decrypted),
            "--src",
            str(tarball),
            "--decrypt-with",
            str(key_files["private"]),
        )
        == 0
    )
    assert decrypted.read_bytes() == EXPORT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json", "out.json", "out.tar"]


def test_cli_round_trip_with_kms(tmp_path: Path, export_file: Path, kms: LocalKmsServer) -> None:
    config = tmp_path / "kms.json"
    config.write_text(json.dumps(kms.config))
    tarball, decrypted = tmp_path / "out.tar", tmp_path / "out.json"
    endpoint = ["--gcp-kms-endpoint", kms.endpoint]
    assert (
        run_cli(
            "backup",
            "encrypt",
            str(tarball),
            "--src",
            str(export_file),
            "--encrypt-with-gcp-kms",
            str(config),
            *endpoint,
        )
        == 0
    )
    assert (
        run_cli(
            "backup",
            "decrypt",
            str(decrypted),
            "--src",
            str(tarball),
            "--decrypt-with-gcp-kms",
            str(config),
            *endpoint,
        )
        == 0
    )
    assert decrypted.read_bytes() == EXPORT


@pytest.mark.parametrize("command", ["encrypt", "decrypt"])
def test_cli_key_flags_are_required_and_exclusive(
    command: str,
    tmp_path: Path,
    export_file: Path,
    key_files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    flag = f"--{command}-with"
    key = key_files["public" if command == "encrypt" else "private"]
    config = tmp_path / "kms.json"
    config.write_text(json.dumps(KMS_CONFIG))
    base = ["backup", command, str(tmp_path / "out"), "--src", str(export_file)]

    assert run_cli(*base) == 2
    required = ENCRYPT_FLAG_REQUIRED if command == "encrypt" else DECRYPT_FLAG_REQUIRED
    err = capsys.readouterr().err
    assert err.startswith("usage: relocate backup " + command)
    assert f"relocate backup {command}: error: {required}" in err

    assert run_cli(*base, flag, str(key), f"{flag}-gcp-kms", str(config)) == 2
    exclusive = ENCRYPT_FLAGS_EXCLUSIVE if command == "encrypt" else DECRYPT_FLAGS_EXCLUSIVE
    assert exclusive in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_encrypt_invalid_json(
    tmp_path: Path, key_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for bad in (b'[{"a": 1}', b"[] trailing", b"", b"\xff\xfe"):
        src = tmp_path / "bad.json"
        src.write_bytes(bad)
        dest = tmp_path / "out.tar"
        rc = run_cli(
            "backup",
            "encrypt",
            str(dest),
            "--src",
            str(src),
            "--encrypt-with",
            str(key_files["public"]),
        )
        assert rc == 1
        assert capsys.readouterr().err.strip() == "Invalid input JSON"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]  # nothing written


def test_cli_decrypt_failure_writes_nothing(
    tmp_path: Path,
    export_file: Path,
    key_files: dict[str, Path],
    rsa_key: rsa.RSAPrivateKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tarball = tmp_path / "in.tar"
    tarball.write_bytes(encrypt(EXPORT, public_key_pem=_public_pem(rsa_key)))
    dest = tmp_path / "out.json"
    rc = run_cli(
        "backup",
        "decrypt",
        str(dest),
        "--src",
        str(tarball),
        "--decrypt-with",
        str(key_files["other_private"]),
    )
    assert rc == 1
    assert capsys.readouterr().err.strip() == f"Invalid tarball: {PUBLIC_KEY_MISMATCH}"
    assert not dest.exists()
    rc = run_cli(
        "backup",
        "decrypt",
        str(dest),
        "--src",
        str(export_file),
        "--decrypt-with",
        str(key_files["private"]),
    )
    assert rc == 1
    assert capsys.readouterr().err.strip() == f"Invalid tarball: {PLAIN_INPUT_WITH_KEY}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json", "in.tar"]


def test_cli_decrypt_bad_kms_config(
    tmp_path: Path, export_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kms.json"
    config.write_text(json.dumps({**KMS_CONFIG, "version": 1}))
    rc = run_cli(
        "backup",
        "decrypt",
        str(tmp_path / "out.json"),
        "--src",
        str(export_file),
        "--decrypt-with-gcp-kms",
        str(config),
    )
    assert rc == 1
    assert capsys.readouterr().err.strip() == f"Invalid tarball: {KMS_CONFIG_FIELDS}"


def test_cli_missing_files_are_usage_errors(
    tmp_path: Path,
    export_file: Path,
    key_files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = str(tmp_path / "missing")
    out = str(tmp_path / "out")
    assert (
        run_cli(
            "backup", "decrypt", out, "--src", missing, "--decrypt-with", str(key_files["private"])
        )
        == 2
    )
    assert "Invalid value for '--src'" in capsys.readouterr().err
    assert (
        run_cli("backup", "decrypt", out, "--src", str(export_file), "--decrypt-with", missing) == 2
    )
    assert "Invalid value for '--decrypt-with'" in capsys.readouterr().err
    assert (
        run_cli("backup", "encrypt", out, "--src", str(export_file), "--encrypt-with", missing) == 2
    )
    assert "Invalid value for '--encrypt-with'" in capsys.readouterr().err


def test_cli_stdin_and_stdout(
    key_files: dict[str, Path],
    rsa_key: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    class Stdin:
        buffer = NonSeekable(EXPORT)

    monkeypatch.setattr(sys, "stdin", Stdin())
    assert (
        run_cli("backup", "encrypt", "-", "--src", "-", "--encrypt-with", str(key_files["public"]))
        == 0
    )
    tarball = capsysbinary.readouterr().out
    assert reference_decrypt(tarball, rsa_key) == EXPORT

    class TarStdin:
        buffer = NonSeekable(tarball)

    monkeypatch.setattr(sys, "stdin", TarStdin())
    assert (
        run_cli("backup", "decrypt", "-", "--src", "-", "--decrypt-with", str(key_files["private"]))
        == 0
    )
    assert capsysbinary.readouterr().out == EXPORT


def test_cli_help_hides_the_endpoint_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_cli("backup", "decrypt", "--help")
    out = capsys.readouterr().out
    assert "--decrypt-with-gcp-kms" in out
    assert "--gcp-kms-endpoint" not in out
